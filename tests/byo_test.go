//go:build integration

package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tests/netns"
)

// byoConfig is netbootd behind someone else's DHCP server: DHCP off, TFTP and HTTP on. byo1 is
// reserved with its address (the external server's reservation), byo2 by MAC only: netbootd
// finds it by the neighbour table. Each machine's script and config carry its secrets.
const byoConfig = `
interface: {server_ip: 10.10.0.1}
dhcp: {enabled: false}
http: {assets: %[1]s}
tftp: {root: %[1]s}
syslog: {listen: "10.10.0.1:514"}
reservations:
  - {mac: "02:00:00:00:b0:01", ip: 10.10.0.21, hostname: byo1, labels: {role: worker}}
  - {mac: "02:00:00:00:b0:02", hostname: byo2, labels: {role: worker}}
profiles:
  - name: worker
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 join=SECRET-{{.Hostname}} ds=nocloud-net;s={{.ConfigURL}}/ netbootd.booted={{.BootedURL}}"
    user_data: |
      #cloud-config
      password: SECRET-{{.Hostname}}
groups:
  - {name: workers, profile: worker, selector: {labels: {role: worker}}}
`

// byoAssets is a directory with a kernel, an initrd and a boot loader to fetch (no VM boots them).
func byoAssets(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"vmlinuz": "KERNEL-byo", "initrd.gz": "INITRD-byo", "loader.efi": strings.Repeat("LOADER", 4096)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// waitMachine waits until mac's timeline satisfies ok and returns it.
func (d *daemon) waitMachine(mac string, ok func(machines.Machine) bool) machines.Machine {
	d.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		var m machines.Machine
		if out, err := d.ns.Exec("curl", "-sf", "http://"+d.mgmtAddr+"/api/v1/machines/"+mac); err == nil {
			_ = json.Unmarshal([]byte(out), &m)
			if ok(m) {
				return m
			}
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("machine %s: timeline not as expected after %v:\n%s", mac, patience, describe(m))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fetch runs curl in c and returns the HTTP status and body.
func fetch(t *testing.T, c *netns.NS, url string) (int, string) {
	t.Helper()
	out, err := c.Exec("curl", "-sS", "-w", "\n%{http_code}", url)
	if err != nil {
		t.Fatalf("curl %s in %s: %v\n%s", url, c.Name(), err, out)
	}
	i := strings.LastIndexByte(out, '\n')
	var code int
	fmt.Sscan(out[i+1:], &code)
	return code, out[:i]
}

// With dhcp.enabled false netbootd binds neither 67 nor 4011, attaches no XDP program and
// detaches the one an earlier run with DHCP on left pinned, answers no DHCP request (a real
// udhcpc and a PXE DISCOVER reach its interface and get nothing), and still serves TFTP and HTTP
// to the machines, on their timelines.
func TestBYODHCPOff(t *testing.T) {
	assets := byoAssets(t)
	r := newXDPRack(t)
	pins := pinDir(t, r)

	// An earlier run with DHCP on leaves its fast path pinned and attached.
	on := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", "--xdp", "generic", "--pin-dir", pins)
	if err := on.stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if ln := r.server.Run(t, "ip", "-d", "link", "show", "sv0"); !strings.Contains(ln, "xdpgeneric") {
		t.Fatalf("the DHCP-on run left no XDP program to detach:\n%s", ln)
	}

	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(byoConfig, assets), "", "--xdp", "generic", "--pin-dir", pins)
	if !strings.Contains(d.logs(), "detached the XDP fast path an earlier run left pinned") {
		t.Errorf("no log of the stale fast path detached:\n%s", d.logs())
	}
	if ln := r.server.Run(t, "ip", "-d", "link", "show", "sv0"); regexp.MustCompile(`\bxdp`).MatchString(ln) {
		t.Errorf("an XDP program is still attached with DHCP off:\n%s", ln)
	}
	if ents, err := os.ReadDir(filepath.Join(pins, "sv0")); err == nil {
		t.Errorf("pins left with DHCP off: %v", ents)
	}
	udp := r.server.Run(t, "ss", "-H", "-uln")
	for _, port := range []string{":67 ", ":4011 "} {
		if strings.Contains(udp+" ", port) {
			t.Errorf("something listens on UDP %s with DHCP off:\n%s", strings.TrimSpace(port), udp)
		}
	}
	if !strings.Contains(udp, "10.10.0.1:69 ") {
		t.Errorf("TFTP does not listen on 10.10.0.1:69:\n%s", udp)
	}

	// Real DHCP clients reach the interface and get no answer.
	rx := func() int {
		var n int
		fmt.Sscan(r.server.Run(t, "cat", "/sys/class/net/sv0/statistics/rx_packets"), &n)
		return n
	}
	before := rx()
	c1 := r.client(t, "02:00:00:00:b0:01")
	if out, err := c1.Exec("busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "3", "-T", "1", "-s", writeScript(t, udhcpcScript)); err == nil || boundFields(out) != nil {
		t.Errorf("udhcpc got a lease with netbootd's DHCP off (err %v):\n%s", err, out)
	}
	if replies := discover(t, c1, pxeDiscover(t, "02:00:00:00:b0:01"), 0); len(replies) != 0 {
		t.Errorf("a PXE DISCOVER got %d replies with DHCP off", len(replies))
	}
	if after := rx(); after < before+4 {
		t.Errorf("the DHCP requests did not reach sv0 (rx packets %d → %d): the silence proves nothing", before, after)
	}
	for _, m := range []string{"netbootd_dhcp_requests_total", "netbootd_dhcp_replies_total", "netbootd_xdp_packets_total"} {
		if n := d.metric(m); n != 0 {
			t.Errorf("%s = %v with DHCP off", m, n)
		}
	}

	// The machine, addressed by "another server", boots from netbootd: TFTP, its script, its
	// kernel, its config and "booted", all on its timeline.
	c1.Run(t, "ip", "addr", "add", "10.10.0.21/24", "dev", "eth0")
	local := filepath.Join(t.TempDir(), "loader.efi")
	if out, err := c1.Exec("tftp", "-m", "binary", "10.10.0.1", "-c", "get", "loader.efi", local); err != nil {
		t.Fatalf("tftp-hpa: %v\n%s", err, out)
	}
	if b, err := os.ReadFile(local); err != nil || string(b) != strings.Repeat("LOADER", 4096) {
		t.Errorf("tftp fetched %d bytes (%v), not loader.efi", len(b), err)
	}
	// Its first request opens its timeline, at its address (the neighbour table's).
	d.waitMachine("02:00:00:00:b0:01", func(m machines.Machine) bool {
		return m.IP == "10.10.0.21" && hasEvent(m, "tftp", machines.PhaseTFTP, "loader.efi")
	})
	code, script := fetch(t, c1, "http://10.10.0.1:8080/auto.ipxe")
	if code != 200 || !strings.Contains(script, "join=SECRET-byo1") || !strings.Contains(script, "kernel http://10.10.0.1:8080/assets/vmlinuz") {
		t.Fatalf("auto.ipxe for byo1 = %d:\n%s", code, script)
	}
	walk(t, c1, script)
	m := d.waitMachine("02:00:00:00:b0:01", func(m machines.Machine) bool { return m.Phase == machines.PhaseBooted })
	expectEvents(t, "byo1's", m, []event{
		{"tftp", machines.PhaseTFTP, "loader.efi"},
		{"http", machines.PhaseScript, "GET /auto.ipxe: profile worker"},
		{"http", machines.PhaseKernel, ""},
		{"callback", machines.PhaseBooted, ""},
	})
	for _, e := range m.Events {
		if e.Source == "dhcp" || e.Source == "xdp" {
			t.Errorf("a DHCP event with DHCP off: %+v", e)
		}
	}
	// Its syslog lands there too: the address it fetched from is its own.
	c1.Run(t, "logger", "-n", "10.10.0.1", "-P", "514", "--udp", "--rfc3164", "-t", "installer", "-p", "user.info", "byo syslog line")
	d.waitMachine("02:00:00:00:b0:01", func(m machines.Machine) bool { return hasEvent(m, "syslog", "", "byo syslog line") })
}

// walk fetches what a machine's script names, as iPXE and the booted system would: the kernel
// and initrds, the user-data from the ds= URL, and the booted callback. It returns the URLs.
func walk(t *testing.T, c *netns.NS, script string) []string {
	t.Helper()
	urls := regexp.MustCompile(`https?://[^\s]+`).FindAllString(script, -1)
	if len(urls) < 4 {
		t.Fatalf("script names %d URLs, want kernel, initrd, config and booted:\n%s", len(urls), script)
	}
	for _, u := range urls {
		target := strings.TrimSuffix(u, "/")
		if strings.Contains(u, "/configs/") {
			target += "/user-data"
		}
		code, body := fetch(t, c, target)
		if code != 200 {
			t.Errorf("GET %s = %d: %s", target, code, body)
		}
	}
	return urls
}

// GET /auto.ipxe finds the machine by its address: an on-link client whose MAC is reserved
// (without an ip) gets its script through the neighbour table, with or without ?mac=. Another
// host that names that MAC, or takes a reserved machine's address with its own MAC, gets 403 and
// none of the secrets; a stranger gets a script that says why and exits. TFTP from the on-link
// machine lands on its timeline.
func TestBYOAutoIPXEIdentity(t *testing.T) {
	assets := byoAssets(t)
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(byoConfig, assets), "")

	victim := r.onLink(t, "02:00:00:00:b0:02", "10.10.0.42/24") // reserved by MAC only
	attacker := r.onLink(t, "02:00:00:00:66:66", "10.10.0.66/24")

	for _, path := range []string{"/auto.ipxe", "/auto.ipxe?mac=02:00:00:00:b0:02", "/ipxe/script?mac=02-00-00-00-b0-02"} {
		code, body := fetch(t, victim, "http://10.10.0.1:8080"+path)
		if code != 200 || !strings.Contains(body, "join=SECRET-byo2") {
			t.Errorf("the machine itself: GET %s = %d:\n%s", path, code, body)
		}
	}
	local := filepath.Join(t.TempDir(), "loader.efi")
	if out, err := victim.Exec("atftp", "--get", "-r", "loader.efi", "-l", local, "10.10.0.1"); err != nil {
		t.Fatalf("atftp: %v\n%s", err, out)
	}
	m := d.waitMachine("02:00:00:00:b0:02", func(m machines.Machine) bool { return hasEvent(m, "tftp", machines.PhaseTFTP, "loader.efi") })
	if m.IP != "10.10.0.42" || !hasEvent(m, "http", machines.PhaseScript, "GET /auto.ipxe: profile worker") {
		t.Errorf("byo2's timeline:\n%s", describe(m))
	}

	// The attacker claims byo2's MAC: refused, no secret.
	for _, path := range []string{"/auto.ipxe?mac=02:00:00:00:b0:02", "/ipxe/script?mac=02-00-00-00-b0-02",
		"/configs/user-data?mac=02:00:00:00:b0:02", "/configs/02-00-00-00-b0-02/user-data", "/booted/02-00-00-00-b0-02"} {
		code, body := fetch(t, attacker, "http://10.10.0.1:8080"+path)
		if code != 403 || body != "" {
			t.Errorf("attacker claiming byo2: GET %s = %d %q, want 403 and nothing", path, code, body)
		}
	}
	// Its own address identifies it as itself: no reservation, no profile, no secret.
	if code, body := fetch(t, attacker, "http://10.10.0.1:8080/auto.ipxe"); code != 200 || strings.Contains(body, "SECRET") || !strings.Contains(body, "exit") {
		t.Errorf("attacker's own auto.ipxe = %d:\n%s", code, body)
	}
	if _, err := attacker.Exec("curl", "-sf", "http://"+d.mgmtAddr+"/api/v1/machines/02:00:00:00:66:66"); err == nil {
		t.Errorf("the attacker's unreserved MAC got a timeline")
	}

	// The attacker takes byo1's reserved address with its own MAC (byo1 is off): the neighbour
	// table shows it is not byo1, so the reservation's ip alone lets nothing through.
	attacker.Run(t, "ip", "addr", "flush", "dev", "eth0")
	attacker.Run(t, "ip", "addr", "add", "10.10.0.21/24", "dev", "eth0")
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/auto.ipxe?mac=02:00:00:00:b0:01", 403},
		{"/ipxe/script?mac=02-00-00-00-b0-01", 403},
		{"/configs/user-data?mac=02:00:00:00:b0:01", 403},
		{"/configs/user-data", 404}, // by address: the attacker's own MAC, which has no profile
		{"/auto.ipxe", 200},         // by address: the attacker's own, "no profile"
	} {
		code, body := fetch(t, attacker, "http://10.10.0.1:8080"+tc.path)
		if code != tc.code || strings.Contains(body, "SECRET") {
			t.Errorf("attacker at byo1's address: GET %s = %d, want %d:\n%s", tc.path, code, tc.code, body)
		}
	}

	// An on-link host with an unreserved MAC and no group for it is told why, and gets nothing.
	stranger := r.onLink(t, "02:00:00:00:77:77", "10.10.0.77/24")
	if code, body := fetch(t, stranger, "http://10.10.0.1:8080/auto.ipxe"); code != 200 || !strings.HasPrefix(body, "#!ipxe") || strings.Contains(body, "SECRET") {
		t.Errorf("stranger's auto.ipxe = %d:\n%s", code, body)
	}

	// The victim still gets its script after all that.
	if code, body := fetch(t, victim, "http://10.10.0.1:8080/auto.ipxe"); code != 200 || !strings.Contains(body, "join=SECRET-byo2") {
		t.Errorf("the machine itself afterwards = %d:\n%s", code, body)
	}
}

// natConfig: netbootd does DHCP on its LAN, and machines reach its HTTP through a port-forward
// at another address, which base_url names.
const natConfig = `
interface: {mode: authoritative, server_ip: 10.10.0.1}
http: {assets: %[1]s, base_url: "http://10.30.0.1"}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
    options: {router: 10.10.0.254}
  - cidr: 10.30.0.0/24
    relays: [10.10.0.254]
reservations:
  - {mac: "02:00:00:00:c0:01", ip: 10.30.0.21, hostname: natted, labels: {role: worker}}
profiles:
  - name: worker
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 join=SECRET-{{.Hostname}} ds=nocloud-net;s={{.ConfigURL}}/ netbootd.booted={{.BootedURL}}"
    user_data: |
      #cloud-config
      password: SECRET-{{.Hostname}}
      phone_home: {url: "{{.BootedURL}}", post: all}
      bootcmd: ["curl -fsS {{.AssetsURL}}/initrd.gz -o /dev/null"]
groups:
  - {name: workers, profile: worker, selector: {labels: {role: worker}}}
`

// Behind a port-forward: netbootd listens on 10.10.0.1:8080; a router namespace forwards
// 10.30.0.1:80 there with an nftables DNAT, and base_url is http://10.30.0.1. The DHCP boot file
// for iPXE and for UEFI HTTP boot, the chain script, the machine's script, its kernel arguments,
// config and booted URLs all start with the public base, and a client behind the router walks
// them all through it to "booted".
func TestBYOBaseURLBehindNAT(t *testing.T) {
	const public = "http://10.30.0.1"
	assets := byoAssets(t)
	r := newRack(t)
	rtr := netns.New(t, "nbd")
	netns.Veth(t, rtr, "lan0", "10.10.0.254/24", r.lan, "rtp", "")
	r.lan.Enslave(t, "rtp", "br0")
	client := netns.New(t, "nbd")
	netns.Veth(t, client, "eth0", "10.30.0.21/24", rtr, "cl0", "10.30.0.1/24")
	client.Run(t, "ip", "link", "set", "eth0", "address", "02:00:00:00:c0:01")
	client.Run(t, "ip", "route", "add", "default", "via", "10.30.0.1")
	r.server.Run(t, "ip", "route", "add", "10.30.0.0/24", "via", "10.10.0.254")
	rtr.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	rtr.Run(t, "nft", "add table ip nat; add chain ip nat pre { type nat hook prerouting priority dstnat; }; "+
		"add rule ip nat pre ip daddr 10.30.0.1 tcp dport 80 dnat to 10.10.0.1:8080")

	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(natConfig, assets), "", goPath...)

	// DHCP: what iPXE and UEFI HTTP boot are told.
	lan := r.client(t, "02:00:00:00:c0:02")
	hw, _ := net.ParseMAC("02:00:00:00:c0:02")
	ipxe, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(hw), dhcpv4.WithBroadcast(true),
		dhcpv4.WithUserClass("iPXE", false), dhcpv4.WithRequestedOptions(dhcpv4.OptionBootfileName))
	if err != nil {
		t.Fatal(err)
	}
	httpBoot, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(hw), dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("HTTPClient:Arch:00016:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.Arch(16))), dhcpv4.WithRequestedOptions(dhcpv4.OptionBootfileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    *dhcpv4.DHCPv4
		want string
	}{
		{"iPXE", ipxe, public + "/ipxe/boot.ipxe"},
		{"UEFI HTTP boot", httpBoot, public + "/ipxe/ipxe.efi"},
	} {
		replies := discover(t, lan, tc.m, 1)
		if len(replies) != 1 {
			t.Fatalf("%s: %d replies\n%s", tc.name, len(replies), d.logs())
		}
		file := replies[0].BootFileName
		if opt := replies[0].Options.Get(dhcpv4.OptionBootfileName); len(opt) > 0 {
			file = string(opt)
		}
		if file != tc.want {
			t.Errorf("%s: boot file %q, want %q", tc.name, file, tc.want)
		}
	}

	// HTTP through the port-forward, from behind the router.
	code, chain := fetch(t, client, public+"/ipxe/boot.ipxe")
	want := "chain --replace --autofree " + public + "/ipxe/script?"
	if code != 200 || !strings.Contains(chain, want) {
		t.Fatalf("chain script = %d:\n%s\nwant %q", code, chain, want)
	}
	code, script := fetch(t, client, public+"/ipxe/script?mac=02-00-00-00-c0-01")
	if code != 200 || !strings.Contains(script, "join=SECRET-natted") {
		t.Fatalf("script through the port-forward = %d:\n%s", code, script)
	}
	code, auto := fetch(t, client, public+"/auto.ipxe")
	if code != 200 || !strings.Contains(auto, "join=SECRET-natted") {
		t.Errorf("auto.ipxe through the port-forward = %d:\n%s", code, auto)
	}
	urls := walk(t, client, script)
	for _, u := range urls {
		if !strings.HasPrefix(u, public+"/") {
			t.Errorf("the script names %s, not under base_url %s:\n%s", u, public, script)
		}
	}
	for _, kind := range []string{"/assets/vmlinuz", "/assets/initrd.gz", "/configs/02-00-00-00-c0-01/", "/booted/02-00-00-00-c0-01/"} {
		if !strings.Contains(script, public+kind) {
			t.Errorf("the script lacks %s%s:\n%s", public, kind, script)
		}
	}
	code, userData := fetch(t, client, public+"/configs/user-data")
	if code != 200 || !strings.Contains(userData, `url: "`+public+"/booted/02-00-00-00-c0-01/") || !strings.Contains(userData, "curl -fsS "+public+"/assets/initrd.gz") {
		t.Errorf("user-data through the port-forward = %d, want its URLs under %s:\n%s", code, public, userData)
	}
	if strings.Contains(script+chain+userData, "10.10.0.1") {
		t.Errorf("a URL names the private listener 10.10.0.1:\n%s\n%s\n%s", chain, script, userData)
	}
	m := d.waitMachine("02:00:00:00:c0:01", func(m machines.Machine) bool { return m.Phase == machines.PhaseBooted })
	if !hasEvent(m, "callback", machines.PhaseBooted, "from 10.30.0.21") {
		t.Errorf("booted through the port-forward:\n%s", describe(m))
	}
}

// In proxy mode netbootd gives no addresses: a machine that got its address from the network's
// DHCP server (dnsmasq here) and has no reservation used to get 403 for its script. The neighbour
// table now recognises it; a host claiming its MAC still gets 403.
func TestBYOProxyModeScriptByNeighbour(t *testing.T) {
	r := newRack(t)
	r.lanDnsmasq(t)
	const conf = `
interface: {mode: proxy}
profiles: [{name: p, script: "#!ipxe\necho SECRET-{{.MAC}}\nexit"}]
groups: [{name: all, profile: p}]
`
	startNetbootd(t, r.server, "sv0", "10.10.0.1", conf, "", goPath...)

	machine := r.client(t, "02:00:00:00:d0:01")
	attacker := r.client(t, "02:00:00:00:d0:66")
	for _, c := range []*netns.NS{machine, attacker} {
		if got := udhcpcOnce(t, c); got["serverid"] != "10.10.0.2" {
			t.Fatalf("address from %s, want dnsmasq", got["serverid"])
		}
	}
	const url = "http://10.10.0.1:8080/ipxe/script?mac=02-00-00-00-d0-01"
	if code, body := fetch(t, machine, url); code != 200 || !strings.Contains(body, "SECRET-02:00:00:00:d0:01") {
		t.Errorf("the machine's own script in proxy mode = %d:\n%s", code, body)
	}
	if code, body := fetch(t, attacker, url); code != 403 || body != "" {
		t.Errorf("another host claiming the MAC = %d %q, want 403 and nothing", code, body)
	}
}
