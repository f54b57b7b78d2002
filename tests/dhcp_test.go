//go:build integration

package tests

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/netns"
)

// rackConfig: one local subnet with a pool, one relayed subnet, two reservations.
const rackConfig = `
interface: {mode: authoritative, server_ip: 10.10.0.1}
dhcp: {offer_hold: 10s, decline_hold: 1m}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
    lease_time: 10m
    options:
      router: 10.10.0.1
      dns: [10.10.0.53]
      domain: rack.test
  - cidr: 10.20.0.0/24
    pools: ["10.20.0.100-10.20.0.150"]
    lease_time: 10m
    relays: [10.10.0.2]
    options: {router: 10.20.0.1}
reservations:
  - {mac: "02:00:00:00:00:0a", ip: 10.10.0.10, hostname: node10}
  - {mac: "02:00:00:00:00:0b", ip: 10.10.0.11, hostname: node11}
`

// The Go control plane answers these tests: --xdp off, so every reply crosses the Go path.
var goPath = []string{"--xdp", "off"}

func TestUdhcpcReservedAndPool(t *testing.T) {
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", goPath...)

	reserved := udhcpcOnce(t, r.client(t, "02:00:00:00:00:0a"))
	want := map[string]string{"ip": "10.10.0.10", "subnet": "255.255.255.0", "router": "10.10.0.1",
		"dns": "10.10.0.53", "hostname": "node10", "domain": "rack.test", "lease": "600", "serverid": "10.10.0.1"}
	for k, v := range want {
		if reserved[k] != v {
			t.Errorf("reserved client: %s = %q, want %q (all: %v)", k, reserved[k], v, reserved)
		}
	}

	pooled := udhcpcOnce(t, r.client(t, "02:00:00:00:01:01"))
	ip := mustAddr(t, pooled["ip"])
	if ip.Compare(mustAddr(t, "10.10.0.100")) < 0 || ip.Compare(mustAddr(t, "10.10.0.150")) > 0 {
		t.Errorf("pool client got %s, want 10.10.0.100-150", ip)
	}
	found := false
	for _, l := range d.leases() {
		if l.MAC == "02:00:00:00:01:01" && l.IP == ip.String() && l.State == "bound" {
			found = true
		}
	}
	if !found {
		t.Errorf("lease of the pool client not in the store: %+v", d.leases())
	}
	if n := d.metric("netbootd_dhcp_replies_total", `type="ACK"`); n < 2 {
		t.Errorf("netbootd_dhcp_replies_total{type=ACK} = %v, want >= 2", n)
	}
}

// A returning client keeps its address: renewing (unicast, ciaddr) and after a restart of the
// client (init-reboot); RELEASE frees the lease.
func TestUdhcpcRenewAndRelease(t *testing.T) {
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", goPath...)
	c := r.client(t, "02:00:00:00:01:02")
	first := udhcpcOnce(t, c)

	// Long-running udhcpc: SIGUSR1 makes it renew by unicast; -R releases on exit.
	out := &syncBuffer{}
	cmd := c.Cmd(t, "busybox", "udhcpc", "-i", "eth0", "-f", "-R", "-t", "4", "-T", "1",
		"-r", first["ip"], "-s", writeScript(t, udhcpcScript))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "udhcpc bound", func() bool { return strings.Contains(out.String(), "event=bound") })
	if f := boundFields(out.String()); f["ip"] != first["ip"] {
		t.Fatalf("second run got %s, first got %s", f["ip"], first["ip"])
	}
	_ = cmd.Process.Signal(syscall.SIGUSR1)
	waitFor(t, "udhcpc renew", func() bool { return strings.Contains(out.String(), "event=renew") })
	if f := boundFields(out.String()); f["ip"] != first["ip"] {
		t.Fatalf("renew got %s, want %s", f["ip"], first["ip"])
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	waitFor(t, "lease released", func() bool {
		for _, l := range d.leases() {
			if l.MAC == "02:00:00:00:01:02" && l.State == "bound" {
				return false
			}
		}
		return true
	})
	if n := d.metric("netbootd_dhcp_requests_total", `type="RELEASE"`); n < 1 {
		t.Errorf("no RELEASE counted")
	}
}

func TestDhclientReservedAndPool(t *testing.T) {
	r := newRack(t)
	startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", goPath...)
	for _, tc := range []struct {
		mac, want string
	}{{"02:00:00:00:00:0b", "10.10.0.11"}, {"02:00:00:00:01:03", "10.10.0."}} {
		c := r.client(t, tc.mac)
		got := dhclient(t, c)
		if !strings.HasPrefix(got, tc.want) || (tc.want == "10.10.0." && got == "10.10.0.11") {
			t.Errorf("dhclient %s got %q, want %s", tc.mac, got, tc.want)
		}
		// Running it again uses the lease file: init-reboot for the same address.
		if again := dhclient(t, c); again != got {
			t.Errorf("dhclient %s second run got %q, first %q", tc.mac, again, got)
		}
	}
}

// dhclient runs ISC dhclient once in c and returns the address it bound.
func dhclient(t *testing.T, c *netns.NS) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "nbd-dhclient-"+c.Name())
	_ = os.MkdirAll(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	result := filepath.Join(dir, "bound")
	os.Remove(result)
	script := writeScript(t, `#!/bin/sh
case "$reason" in BOUND|REBOOT|RENEW) echo "$new_ip_address" > `+result+`;; esac
`)
	out, err := c.Exec("timeout", "30", "dhclient", "-4", "-1", "-v", "-sf", script,
		"-lf", filepath.Join(dir, "leases"), "-pf", filepath.Join(dir, "pid"), "eth0")
	if err != nil {
		t.Fatalf("dhclient in %s: %v\n%s", c.Name(), err, out)
	}
	// -1 leaves dhclient running after it binds; stop it without releasing.
	if pid, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
		_, _ = c.Exec("kill", strings.TrimSpace(string(pid)))
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatalf("dhclient in %s bound nothing:\n%s", c.Name(), out)
	}
	return strings.TrimSpace(string(b))
}

// A client behind ISC dhcrelay (which adds option 82) gets an address from the relayed subnet,
// and every reply the server sends to the relay carries the relay's option 82 unchanged.
func TestRelayWithOption82(t *testing.T) {
	r := newRelayedRack(t, "02:00:00:00:02:01")
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", goPath...)
	capture := startCapture(t, r.server, "sv0", 67)
	relOut := r.dhcrelay(t, "-a")

	got := udhcpcOnce(t, r.client)
	if !strings.HasPrefix(got["ip"], "10.20.0.1") || got["router"] != "10.20.0.1" {
		t.Errorf("relayed client got ip=%s router=%s, want 10.20.0.100-150 via 10.20.0.1 (relay log: %s)", got["ip"], got["router"], relOut.String())
	}
	time.Sleep(300 * time.Millisecond)
	frames := capture.stop(t)
	t.Logf("tcpdump: %s", capture.out.String())
	if dump, err := r.server.Exec("tcpdump", "-nr", capture.path); err == nil {
		t.Logf("capture:\n%s", dump)
	}
	var requests82, replies, echoed int
	var want []byte
	for _, f := range frames {
		op, opt82 := bootpOp(f), dhcpOption(f, 82)
		switch op {
		case 1:
			if opt82 != nil {
				requests82++
				want = opt82
			}
		case 2:
			replies++
			if opt82 != nil && want != nil && string(opt82) == string(want) {
				echoed++
			}
		}
	}
	if requests82 == 0 {
		t.Fatalf("dhcrelay sent no option 82 (captured %d frames)", len(frames))
	}
	if replies < 2 || echoed != replies {
		t.Errorf("%d replies to the relay, %d with option 82 echoed unchanged; want all of at least 2", replies, echoed)
	}
	if n := d.metric("netbootd_dhcp_replies_total", `type="ACK"`); n < 1 {
		t.Errorf("no ACK counted")
	}
}

// 1,000 DORA exchanges from perfdhcp (as a relay, with 1,000 distinct MACs) complete without a drop.
func TestPerfdhcpThousandExchanges(t *testing.T) {
	server := netns.New(t, "nbd")
	client := netns.New(t, "nbd")
	netns.Veth(t, server, "sv0", "10.30.0.1/16", client, "pc0", "10.30.0.2/16")
	cfg := `
interface: {mode: authoritative, server_ip: 10.30.0.1}
subnets:
  - cidr: 10.30.0.0/16
    pools: ["10.30.1.0-10.30.9.255"]
    relays: [10.30.0.2]   # perfdhcp acts as a relay (giaddr = its address)
    options: {router: 10.30.0.1}
`
	d := startNetbootd(t, server, "sv0", "10.30.0.1", cfg, "", goPath...)
	out := client.Run(t, "perfdhcp", "-4", "-l", "pc0", "-r", "250", "-n", "1000", "-R", "1000", "-W", "2000000")
	sent, recv, drops := perfdhcpStats(out)
	// perfdhcp may send one exchange past -n when it is slowed down: at least 1000 is complete.
	if len(sent) != 2 || sent[0] < 1000 || sent[1] < 999 {
		t.Fatalf("perfdhcp did not complete 1000 exchanges: sent %v\n%s", sent, out)
	}
	for i := range drops {
		if drops[i] != 0 || recv[i] != sent[i] {
			t.Errorf("exchange %d: sent %d, received %d, drops %d", i, sent[i], recv[i], drops[i])
		}
	}
	if n := len(d.leases()); n < 999 {
		t.Errorf("%d leases in the store after 1000 exchanges with distinct MACs", n)
	}
}

// perfdhcpStats reads "sent packets", "received packets" and "drops" per exchange (DO, RA).
func perfdhcpStats(out string) (sent, recv, drops []int) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var n int
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "sent packets:"):
			fmt.Sscanf(line, "sent packets: %d", &n)
			sent = append(sent, n)
		case strings.HasPrefix(line, "received packets:"):
			fmt.Sscanf(line, "received packets: %d", &n)
			recv = append(recv, n)
		case strings.HasPrefix(line, "drops:"):
			fmt.Sscanf(line, "drops: %d", &n)
			drops = append(drops, n)
		}
	}
	return
}

// kill -9 loses nothing: every client keeps its address after a restart, and a new client never
// gets an address that belongs to another.
func TestKill9KeepsLeases(t *testing.T) {
	r := newRack(t)
	state := filepath.Join(t.TempDir(), "state")
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, state, goPath...)
	clients := map[string]string{}
	var nss []*netns.NS
	for i := 0; i < 4; i++ {
		mac := fmt.Sprintf("02:00:00:00:03:%02x", i)
		c := r.client(t, mac)
		nss = append(nss, c)
		clients[mac] = udhcpcOnce(t, c)["ip"]
	}
	if err := d.stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d2 := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, state, goPath...)
	expectBoundLeases(t, d2, clients)
	// Each client asks again for its address (init-reboot) and gets it.
	for i, c := range nss {
		mac := fmt.Sprintf("02:00:00:00:03:%02x", i)
		if f := udhcpcOnce(t, c, "-r", clients[mac]); f["ip"] != clients[mac] {
			t.Errorf("%s after restart got %s, want %s", mac, f["ip"], clients[mac])
		}
	}
	fresh := udhcpcOnce(t, r.client(t, "02:00:00:00:03:ff"))["ip"]
	for mac, ip := range clients {
		if ip == fresh {
			t.Errorf("new client got %s, which belongs to %s", fresh, mac)
		}
	}
}

// SIGTERM drains and exits 0.
func TestSigtermExitsCleanly(t *testing.T) {
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", goPath...)
	udhcpcOnce(t, r.client(t, "02:00:00:00:04:01"))
	if err := d.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, d.logs())
	}
}

// waitFor waits, for up to patience, until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitUntil(t, what, patience, cond)
}

// waitUntil polls cond until it holds, failing the test after timeout.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// expectBoundLeases fails the test for every MAC in want whose bound lease in d (after a
// kill -9 and a restart) is not the address want gives it.
func expectBoundLeases(t *testing.T, d *daemon, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, l := range d.leases() {
		if l.State == "bound" {
			got[l.MAC] = l.IP
		}
	}
	for mac, ip := range want {
		if got[mac] != ip {
			t.Errorf("after kill -9: lease of %s = %q, want %s", mac, got[mac], ip)
		}
	}
}
