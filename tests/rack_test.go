//go:build integration

// Package tests holds end-to-end tests: netbootd as a user runs it (the binary built by `make
// build`, NETBOOTD_BIN), real clients, veth pairs in namespaces the tests create and remove.
package tests

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/netns"
)

// patience is how long a test waits for something that should happen: the daemon getting ready,
// a log line, a reload, a client's answer. It is long because CI machines are small and busy
// (make stress-test); a wait that succeeds returns as soon as its condition holds, so only a
// failing test pays for it. Speed is measured by benchmarks, never by these waits.
const patience = 60 * time.Second

// rack is a server namespace joined to a LAN bridge that client namespaces hang off.
type rack struct {
	server *netns.NS
	lan    *netns.NS
	n      int
}

// newRack builds server ns (sv0, 10.10.0.1/24) ─ lan ns (bridge br0).
func newRack(t *testing.T) *rack {
	t.Helper()
	r := &rack{server: netns.New(t, "nbd"), lan: netns.New(t, "nbd")}
	r.lan.Bridge(t, "br0")
	netns.Veth(t, r.server, "sv0", "10.10.0.1/24", r.lan, "svp", "")
	r.lan.Enslave(t, "svp", "br0")
	return r
}

// client adds a client namespace with eth0 (MAC mac, no address) on the LAN.
func (r *rack) client(t *testing.T, mac string) *netns.NS {
	t.Helper()
	c := r.lanHost(t, "")
	c.Run(t, "ip", "link", "set", "eth0", "address", mac)
	return c
}

// relayedRack is a client behind a router that relays DHCP: server ns (sv0, 10.10.0.1/24) ─
// relay ns (up0 10.10.0.2/24, dn0 10.20.0.1/24) ─ client ns (eth0, no address). rackConfig
// trusts 10.10.0.2 as the relay of 10.20.0.0/24.
type relayedRack struct {
	server, relay, client *netns.NS
}

// newRelayedRack builds a relayedRack whose client has MAC mac.
func newRelayedRack(t *testing.T, mac string) *relayedRack {
	t.Helper()
	r := &relayedRack{server: netns.New(t, "nbd"), relay: netns.New(t, "nbd"), client: netns.New(t, "nbd")}
	netns.Veth(t, r.server, "sv0", "10.10.0.1/24", r.relay, "up0", "10.10.0.2/24")
	netns.Veth(t, r.relay, "dn0", "10.20.0.1/24", r.client, "eth0", "")
	r.client.Run(t, "ip", "link", "set", "eth0", "address", mac)
	r.server.Run(t, "ip", "route", "add", "10.20.0.0/24", "via", "10.10.0.2")
	return r
}

// dhcrelay runs ISC dhcrelay in the relay ns toward 10.10.0.1, with extra flags (-a: add
// option 82), and returns its output once it listens.
func (r *relayedRack) dhcrelay(t *testing.T, extra ...string) *syncBuffer {
	t.Helper()
	args := append([]string{"-4", "-d"}, extra...)
	rel := r.relay.Cmd(t, "dhcrelay", append(args, "-id", "dn0", "-iu", "up0", "10.10.0.1")...)
	out := &syncBuffer{}
	rel.Stdout, rel.Stderr = out, out
	if err := rel.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "dhcrelay listening", func() bool { return strings.Contains(out.String(), "Listening on") })
	return out
}

// onLink adds a client namespace on r's LAN with mac and a static address (cidr), as another
// DHCP server would have given it or an attacker would set it.
func (r *rack) onLink(t *testing.T, mac, cidr string) *netns.NS {
	t.Helper()
	c := r.client(t, mac)
	c.Run(t, "ip", "addr", "add", cidr, "dev", "eth0")
	return c
}

// lanHost adds a namespace on r's LAN whose eth0 has the address cidr (none when empty).
func (r *rack) lanHost(t *testing.T, cidr string) *netns.NS {
	t.Helper()
	h := netns.New(t, "nbd")
	peer := fmt.Sprintf("cp%d", r.n)
	r.n++
	netns.Veth(t, h, "eth0", cidr, r.lan, peer, "")
	r.lan.Enslave(t, peer, "br0")
	return h
}

// lanDnsmasq starts dnsmasq as the network's own DHCP server on r's LAN (10.10.0.2, leasing
// 10.10.0.100-150 for an hour, no DNS), with extra options.
func (r *rack) lanDnsmasq(t *testing.T, extra ...string) {
	t.Helper()
	args := append([]string{"--no-daemon", "--port=0", "--interface=eth0", "--bind-interfaces",
		"--dhcp-range=10.10.0.100,10.10.0.150,255.255.255.0,1h", "--dhcp-leasefile=" + t.TempDir() + "/leases",
		"--no-ping", "--pid-file="}, extra...)
	dnsmasq := r.lanHost(t, "10.10.0.2/24").Cmd(t, "dnsmasq", args...)
	if err := dnsmasq.Start(); err != nil {
		t.Fatal(err)
	}
}

// daemon is a running `netbootd attach`.
type daemon struct {
	t          *testing.T
	ns         *netns.NS
	cmd        *exec.Cmd
	stateDir   string
	httpAddr   string // the boot listener
	mgmtAddr   string // the management listener: the API and /metrics, in ns's loopback
	configPath string
	mu         sync.Mutex
	log        bytes.Buffer
	done       chan struct{}
}

func netbootdBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("NETBOOTD_BIN")
	if bin == "" {
		t.Fatal("NETBOOTD_BIN is not set: run these tests through `make integration`")
	}
	return bin
}

// startNetbootd writes config to a file and runs `netbootd attach iface` in ns until the test ends.
func startNetbootd(t *testing.T, ns *netns.NS, iface, serverIP, config, stateDir string, extra ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "netbootd.yaml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if stateDir == "" {
		stateDir = filepath.Join(dir, "state")
	}
	d := &daemon{t: t, ns: ns, stateDir: stateDir, httpAddr: serverIP + ":8080", mgmtAddr: mgmtListen(extra),
		done: make(chan struct{}), configPath: cfg}
	args := []string{"attach", iface, "--state-dir", stateDir, "--http-listen", d.httpAddr, "--log-level", "debug"}
	if config != "" { // none: netbootd's default, proxyDHCP from what the interface says
		args = append(args, "--config", cfg)
	}
	args = append(args, extra...)
	d.cmd = ns.Cmd(t, netbootdBin(t), args...)
	d.cmd.Stdout = &lockedWriter{d: d}
	d.cmd.Stderr = &lockedWriter{d: d}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start netbootd: %v", err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("netbootd log:\n%s", d.logs())
		}
	})
	d.waitReady()
	return d
}

// defaultMgmtAddr is netbootd's default management listener (nbhttp.DefaultManagementListen).
const defaultMgmtAddr = "127.0.0.1:9180"

// mgmtListen is the management address of a daemon started with these extra arguments.
func mgmtListen(extra []string) string {
	for i, a := range extra {
		if a == "--mgmt-listen" && i+1 < len(extra) {
			return extra[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--mgmt-listen="); ok {
			return v
		}
	}
	return defaultMgmtAddr
}

type lockedWriter struct{ d *daemon }

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	return w.d.log.Write(p)
}

func (d *daemon) logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

func (d *daemon) waitReady() {
	d.t.Helper()
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		select {
		case <-d.done:
			d.t.Fatalf("netbootd exited early:\n%s", d.logs())
		default:
		}
		if out, err := d.ns.Exec("curl", "-sf", "http://"+d.httpAddr+"/readyz"); err == nil && strings.Contains(out, "ready") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	d.t.Fatalf("netbootd not ready after %v:\n%s", patience, d.logs())
}

// stop signals the daemon and waits for it; it returns the exit error, if any.
func (d *daemon) stop(sig syscall.Signal) error {
	select {
	case <-d.done:
	default:
		_ = d.cmd.Process.Signal(sig)
	}
	select {
	case <-d.done:
	case <-time.After(patience):
		_ = d.cmd.Process.Kill()
		<-d.done
		return fmt.Errorf("netbootd did not exit within %v of %v", patience, sig)
	}
	if sig != syscall.SIGKILL && !d.cmd.ProcessState.Success() {
		return fmt.Errorf("netbootd exited: %v", d.cmd.ProcessState)
	}
	return nil
}

// getJSON fetches an API path from the daemon's management listener (inside its namespace) into v.
func (d *daemon) getJSON(path string, v any) {
	d.t.Helper()
	out, err := d.ns.Exec("curl", "-sf", "http://"+d.mgmtAddr+path)
	if err != nil {
		d.t.Fatalf("GET %s: %v: %s", path, err, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		d.t.Fatalf("GET %s: %v: %s", path, err, out)
	}
}

// metric returns the sum of every sample of a metric family whose labels contain all of match.
func (d *daemon) metric(name string, match ...string) float64 {
	d.t.Helper()
	out, err := d.ns.Exec("curl", "-sf", "http://"+d.mgmtAddr+"/metrics")
	if err != nil {
		d.t.Fatalf("GET /metrics: %v: %s", err, out)
	}
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(line, m)
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}

// apiLease is one row of GET /api/v1/leases.
type apiLease struct {
	MAC      string `json:"mac"`
	ClientID string `json:"client_id"`
	IP       string `json:"ip"`
	State    string `json:"state"`
	Subnet   string `json:"subnet"`
	Expires  string `json:"expires"`
}

func (d *daemon) leases() []apiLease {
	var ls []apiLease
	d.getJSON("/api/v1/leases", &ls)
	return ls
}

// udhcpcScript prints what udhcpc learned, one key=value a line, prefixed by the event.
// It configures the address as a real client would: renewals are unicast to and from it.
const udhcpcScript = `#!/bin/sh
case "$1" in
bound|renew) ip addr replace "$ip/$mask" dev "$interface" ;;
deconfig) ip addr flush dev "$interface" ;;
esac
echo "event=$1 ip=$ip subnet=$subnet router=$router dns=$dns hostname=$hostname domain=$domain lease=$lease serverid=$serverid"
`

func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "script.sh")
	if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// udhcpcOnce runs busybox udhcpc in c until it has a lease and quits; returns the "bound" line's fields.
// udhcpcAnsweredByXDP is udhcpcOnce, and fails the test unless d's fast path ACK counter grew
// meanwhile: the kernel, not the control plane, answered what (named in the failure).
func udhcpcAnsweredByXDP(t *testing.T, d *daemon, c *netns.NS, what string) map[string]string {
	t.Helper()
	before := d.metric("netbootd_xdp_packets_total", `result="ack"`)
	got := udhcpcOnce(t, c)
	if after := d.metric("netbootd_xdp_packets_total", `result="ack"`); after <= before {
		t.Errorf("%s was not answered by the fast path (XDP acks %v → %v)", what, before, after)
	}
	return got
}

func udhcpcOnce(t *testing.T, c *netns.NS, extra ...string) map[string]string {
	t.Helper()
	args := append([]string{"udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "4", "-T", "1", "-A", "1",
		"-s", writeScript(t, udhcpcScript)}, extra...)
	out, err := c.Exec("busybox", args...)
	if err != nil {
		t.Fatalf("udhcpc in %s: %v\n%s", c.Name(), err, out)
	}
	f := boundFields(out)
	if f == nil {
		t.Fatalf("udhcpc in %s: no bound event:\n%s", c.Name(), out)
	}
	return f
}

func boundFields(out string) map[string]string {
	var f map[string]string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "event=bound") && !strings.HasPrefix(line, "event=renew") {
			continue
		}
		f = map[string]string{}
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
	}
	return f
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("bad address %q: %v", s, err)
	}
	return a
}
