//go:build integration

package tests

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/netbootd/netbootd/tests/netns"
	"github.com/netbootd/netbootd/tests/xdppass"
)

// multiIfConfig serves three subnets, one per interface: no server_ip, each interface answers
// from its own address.
const multiIfConfig = `
interface: {mode: authoritative}
subnets:
  - {cidr: 10.31.0.0/24, pools: ["10.31.0.100-10.31.0.150"], lease_time: 10m}
  - {cidr: 10.32.0.0/24, pools: ["10.32.0.100-10.32.0.150"], lease_time: 10m}
  - {cidr: 10.33.0.0/24, pools: ["10.33.0.100-10.33.0.150"], lease_time: 10m}
reservations:
  - {mac: "02:00:00:00:31:0a", ip: 10.31.0.10, hostname: node31}
  - {mac: "02:00:00:00:32:0a", ip: 10.32.0.10, hostname: node32}
  - {mac: "02:00:00:00:33:0a", ip: 10.33.0.10, hostname: node33}
`

// multiIfScript prints, on one line, what a client was told: address, server identifier,
// next-server and boot file.
const multiIfScript = `#!/bin/sh
case "$1" in
bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;;
deconfig) ip addr flush dev "$interface" ;;
esac
echo "event=$1 ip=$ip serverid=$serverid siaddr=$siaddr bootfile=$boot_file hostname=$hostname"
`

// multiIfLAN is a LAN of its own (a bridge in its namespace) on a server interface.
func multiIfLAN(t *testing.T, server *netns.NS, dev, cidr string) *rack {
	t.Helper()
	r := &rack{server: server, lan: netns.New(t, "nbd")}
	r.lan.Bridge(t, "br0")
	netns.Veth(t, server, dev, cidr, r.lan, "svp", "")
	r.lan.Enslave(t, "svp", "br0")
	// A veth delivers what native XDP transmits only with a program on its peer.
	if err := r.lan.Do(t, func() error { return xdppass.Attach("svp", false) }); err != nil {
		t.Fatal(err)
	}
	return r
}

// multiIfUdhcpc runs busybox udhcpc on dev in c with extra arguments and returns what it was told.
func multiIfUdhcpc(t *testing.T, c *netns.NS, dev string, extra ...string) map[string]string {
	t.Helper()
	args := append([]string{"udhcpc", "-i", dev, "-f", "-q", "-n", "-t", "4", "-T", "1", "-A", "1",
		"-s", writeScript(t, multiIfScript)}, extra...)
	out, err := c.Exec("busybox", args...)
	if err != nil {
		t.Fatalf("udhcpc on %s in %s: %v\n%s", dev, c.Name(), err, out)
	}
	f := boundFields(out)
	if f == nil {
		t.Fatalf("udhcpc on %s in %s: no bound event:\n%s", dev, c.Name(), out)
	}
	return f
}

// pxeFirmware makes udhcpc ask as BIOS PXE firmware does, padded as firmware pads its requests
// (native XDP on a veth cannot grow a frame).
var pxeFirmware = []string{"-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000", "-x", "0xfa:" + strings.Repeat("00", 200)}

// One netbootd serves three interfaces, the third a sub-interface (sv3.100) stacked on a
// veth (a macvlan: CI's kernel has no 802.1Q; TestMultiIfVLAN, `make test-vlan`, is the
// VLAN), each its
// own subnet: every reply names the address of the interface the client is on (server
// identifier, next-server, the iPXE script URL and the URLs in that script); the reserved
// machine of each interface is answered by that interface's XDP program, pool clients
// (udhcpc and ISC dhclient) by the Go path from the one lease store.
func TestMultiIfAttach(t *testing.T) { multiIfAttach(t, false) }

func multiIfAttach(t *testing.T, vlan bool) {
	server := netns.New(t, "nbd")
	lans := []*rack{multiIfLAN(t, server, "sv1", "10.31.0.1/24"), multiIfLAN(t, server, "sv2", "10.32.0.1/24"),
		multiIfLAN(t, server, "sv3", "")}
	// sv3 carries the third interface, sv3.100: its VLAN 100, or a macvlan on it.
	sub := []string{"ip", "link", "add", "link", "sv3", "name", "sv3.100", "type", "macvlan", "mode", "bridge"}
	if vlan {
		sub = []string{"ip", "link", "add", "link", "sv3", "name", "sv3.100", "type", "vlan", "id", "100"}
	}
	if out, err := server.Exec(sub[0], sub[1:]...); err != nil {
		t.Fatalf("%s: %v\n%s(a kernel without 802.1Q VLANs, CONFIG_VLAN_8021Q, cannot run TestMultiIfVLAN)", strings.Join(sub, " "), err, out)
	}
	server.Run(t, "ip", "addr", "add", "10.33.0.1/24", "dev", "sv3.100")
	server.Run(t, "ip", "link", "set", "sv3.100", "up")

	pins := multiIfPins(t, server, "sv1", "sv2", "sv3.100")
	d := startNetbootd(t, server, "sv1", "10.31.0.1", multiIfConfig, "", "--http-listen", ":8080", "--pin-dir", pins, "sv2", "sv3.100")

	for i, tc := range []struct {
		iface, dev, net string
		lan             *rack
		vlan            bool
	}{
		{"sv1", "eth0", "10.31.0", lans[0], false},
		{"sv2", "eth0", "10.32.0", lans[1], false},
		{"sv3.100", map[bool]string{true: "eth0.100", false: "eth0"}[vlan], "10.33.0", lans[2], vlan},
	} {
		t.Run(tc.iface, func(t *testing.T) {
			server := tc.net + ".1"
			client := func(mac string) *netns.NS {
				c := tc.lan.client(t, mac)
				if tc.vlan {
					c.Run(t, "ip", "link", "add", "link", "eth0", "name", "eth0.100", "type", "vlan", "id", "100")
					c.Run(t, "ip", "link", "set", "eth0.100", "up")
				}
				return c
			}
			acks := func() float64 { return d.metric("netbootd_xdp_packets_total", `iface="`+tc.iface+`"`, `result="ack"`) }

			// The reserved machine, as PXE firmware: the interface's own XDP program answers.
			before := acks()
			got := multiIfUdhcpc(t, client(fmtMAC(0x31+i, 0x0a)), tc.dev, pxeFirmware...)
			want := map[string]string{"ip": tc.net + ".10", "serverid": server, "siaddr": server, "bootfile": "undionly.kpxe", "hostname": "node" + tc.net[3:5]}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("reserved PXE client on %s: %s = %q, want %q (all: %v)", tc.iface, k, got[k], v, got)
				}
			}
			if after := acks(); after <= before {
				t.Errorf("the reserved client on %s was not answered by its XDP program (acks %v → %v)", tc.iface, before, after)
			}

			// A pool client running iPXE: the Go path, the pool of this interface's subnet,
			// and a script URL on this interface's address.
			ipxe := client(fmtMAC(0x31+i, 0x80))
			got = multiIfUdhcpc(t, ipxe, tc.dev, "-x", "0x4d:69505845") // user class "iPXE"
			if !strings.HasPrefix(got["ip"], tc.net+".1") || got["ip"] == server || got["serverid"] != server || got["siaddr"] != server {
				t.Errorf("iPXE pool client on %s: %v, want an address of %s.100-150 from %s", tc.iface, got, tc.net, server)
			}
			script := "http://" + server + ":8080/ipxe/boot.ipxe"
			if got["bootfile"] != script {
				t.Errorf("iPXE pool client on %s: boot file %q, want %q", tc.iface, got["bootfile"], script)
			}
			out, err := ipxe.Exec("curl", "-sf", script)
			if err != nil || !strings.Contains(out, "http://"+server+":8080/ipxe/script?") {
				t.Errorf("the chain script fetched on %s names another address: %v\n%s", tc.iface, err, out)
			}

			// A plain pool client: ISC dhclient where it runs on eth0, udhcpc on the VLAN.
			plain := client(fmtMAC(0x31+i, 0x81))
			var ip string
			if tc.vlan {
				ip = multiIfUdhcpc(t, plain, tc.dev)["ip"]
			} else {
				ip = dhclient(t, plain)
			}
			if !strings.HasPrefix(ip, tc.net+".1") || ip == server {
				t.Errorf("pool client on %s got %q, want an address of %s.100-150", tc.iface, ip, tc.net)
			}
		})
	}
	// One lease store holds the pool clients of every interface.
	subnets := map[string]int{}
	for _, l := range d.leases() {
		subnets[l.Subnet]++
	}
	for _, s := range []string{"10.31.0.0/24", "10.32.0.0/24", "10.33.0.0/24"} {
		if subnets[s] < 2 {
			t.Errorf("lease store: %d leases in %s, want the 2 pool clients (all: %v)", subnets[s], s, subnets)
		}
	}

	// Reload: one server address for all three interfaces is refused, naming the field, and
	// the running configuration stays; a new reservation on sv2 is then answered at once by
	// sv2's XDP program, from sv2's address.
	multiIfReload(t, d, strings.Replace(multiIfConfig, "{mode: authoritative}", "{mode: authoritative, server_ip: 10.31.0.1}", 1), "reload rejected")
	if want := "interface.server_ip: netbootd serves 3 interfaces (sv1, sv2, sv3.100): each answers from its own address"; !strings.Contains(d.logs(), want) {
		t.Errorf("the rejected reload does not say %q:\n%s", want, d.logs())
	}
	multiIfReload(t, d, multiIfConfig+"  - {mac: \"02:00:00:00:32:0b\", ip: 10.32.0.11, hostname: late}\n", "configuration reloaded")
	before := d.metric("netbootd_xdp_packets_total", `iface="sv2"`, `result="ack"`)
	got := multiIfUdhcpc(t, lans[1].client(t, "02:00:00:00:32:0b"), "eth0", pxeFirmware...)
	if got["ip"] != "10.32.0.11" || got["hostname"] != "late" || got["serverid"] != "10.32.0.1" || got["siaddr"] != "10.32.0.1" {
		t.Errorf("the reservation added by the reload, on sv2: %v", got)
	}
	if after := d.metric("netbootd_xdp_packets_total", `iface="sv2"`, `result="ack"`); after <= before {
		t.Errorf("the reservation added by the reload was not answered by sv2's XDP program (acks %v → %v)", before, after)
	}
}

// multiIfReload rewrites d's configuration file and signals it, and waits until the log has
// one more line containing want.
func multiIfReload(t *testing.T, d *daemon, config, want string) {
	t.Helper()
	n := strings.Count(d.logs(), want)
	if err := os.WriteFile(d.configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, want, func() bool { return strings.Count(d.logs(), want) > n })
}

func fmtMAC(a, b int) string {
	const hex = "0123456789abcdef"
	return "02:00:00:00:" + string([]byte{hex[a>>4], hex[a&15]}) + ":" + string([]byte{hex[b>>4], hex[b&15]})
}

// multiIfPins is a fresh pin directory (as pinDir) whose fast paths on every one of ifaces are
// detached when the test ends.
func multiIfPins(t *testing.T, server *netns.NS, ifaces ...string) string {
	t.Helper()
	r := &rack{server: server}
	dir := pinDir(t, r) // detaches sv0, which this test has not: harmless
	t.Cleanup(func() {
		for _, i := range ifaces {
			_, _ = server.Exec(netbootdBin(t), "detach", "--pin-dir", dir, i)
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}
