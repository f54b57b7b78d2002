//go:build integration

package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/tests/netns"
	"github.com/netbootd/netbootd/tests/xdppass"
)

// newXDPRack is newRack with the XDP_PASS program on the server veth's peer, which veth needs
// before it delivers XDP_TX frames.
func newXDPRack(t *testing.T) *rack {
	t.Helper()
	r := newRack(t)
	if err := r.lan.Do(t, func() error { return xdppass.Attach("svp", false) }); err != nil {
		t.Fatal(err)
	}
	return r
}

// testBPFFS is a bpf filesystem outside /sys: `ip netns exec` remounts /sys for the commands it
// runs, so pins under /sys/fs/bpf would vanish with the daemon's mount namespace.
const testBPFFS = "/run/netbootd-test-bpffs"

// pinDir returns a fresh pin directory on testBPFFS for the rack's server; when the test ends
// the fast path pinned there is detached and the directory removed.
func pinDir(t *testing.T, r *rack) string { return pinDirFor(t, r.server, "sv0") }

// pinDirFor is a fresh pin directory on testBPFFS for iface in ns, detached and removed at cleanup.
func pinDirFor(t *testing.T, ns *netns.NS, iface string) string {
	t.Helper()
	if err := os.MkdirAll(testBPFFS, 0o700); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(testBPFFS, &st); err != nil || st.Type != 0xcafe4a11 {
		if err := unix.Mount("bpffs", testBPFFS, "bpf", 0, ""); err != nil {
			t.Fatalf("mount bpffs on %s: %v", testBPFFS, err)
		}
	}
	dir, err := os.MkdirTemp(testBPFFS, "t")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = ns.Exec(netbootdBin(t), "detach", "--pin-dir", dir, iface)
		_ = os.RemoveAll(dir)
	})
	return dir
}

// Reserved clients (udhcpc and dhclient) are answered by XDP: the control plane's reply counter
// stays at zero for them, the program's counts their OFFER and ACK; an unknown MAC still gets a
// pool address from the control plane.
func TestXDPAnswersReservedClients(t *testing.T) {
	for _, mode := range []string{"native", "generic"} {
		t.Run(mode, func(t *testing.T) {
			r := newXDPRack(t)
			pins := pinDir(t, r)
			d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", "--xdp", mode, "--pin-dir", pins)
			if !strings.Contains(d.logs(), `mode=`+mode) {
				t.Fatalf("not attached in %s mode:\n%s", mode, d.logs())
			}

			got := udhcpcOnce(t, r.client(t, "02:00:00:00:00:0a"))
			if got["ip"] != "10.10.0.10" || got["hostname"] != "node10" || got["router"] != "10.10.0.1" || got["lease"] != "600" {
				t.Errorf("reserved udhcpc client got %v", got)
			}
			if ip := dhclient(t, r.client(t, "02:00:00:00:00:0b")); ip != "10.10.0.11" {
				t.Errorf("reserved dhclient client got %q", ip)
			}
			if n := d.metric("netbootd_dhcp_replies_total"); n != 0 {
				st, _ := r.server.Exec(netbootdBin(t), "status", "--pin-dir", pins, "sv0")
				t.Errorf("the control plane sent %v replies; XDP should have answered every reserved request\n%s", n, st)
			}
			if o, a := d.metric("netbootd_xdp_packets_total", `result="offer"`), d.metric("netbootd_xdp_packets_total", `result="ack"`); o < 2 || a < 2 {
				t.Errorf("XDP counted %v offers and %v acks, want >= 2 each", o, a)
			}

			pooled := udhcpcOnce(t, r.client(t, "02:00:00:00:06:01"))
			if !strings.HasPrefix(pooled["ip"], "10.10.0.1") || pooled["ip"] == "10.10.0.10" || pooled["ip"] == "10.10.0.11" {
				t.Errorf("unknown MAC got %q", pooled["ip"])
			}
			if n := d.metric("netbootd_dhcp_replies_total", `type="ACK"`); n < 1 {
				t.Errorf("the control plane did not answer the unknown MAC")
			}
		})
	}
}

// kill -9 the daemon: the pinned program keeps answering reserved clients; a new daemon adopts
// it; `netbootd detach` removes it.
func TestXDPHitlessRestart(t *testing.T) {
	r := newXDPRack(t)
	pins := pinDir(t, r)
	state := t.TempDir()
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, state, "--xdp", "native", "--pin-dir", pins)
	if err := d.stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c0 := r.client(t, "02:00:00:00:00:0a")
	if out, err := c0.Exec("busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "4", "-T", "1", "-s", writeScript(t, udhcpcScript)); err != nil || boundFields(out)["ip"] != "10.10.0.10" {
		st, _ := r.server.Exec(netbootdBin(t), "status", "--pin-dir", pins, "sv0")
		ln, _ := r.server.Exec("ip", "-d", "link", "show", "sv0")
		t.Fatalf("with no daemon, reserved client: %v\n%s\n%s\n%s", err, out, st, ln)
	}
	status, err := r.server.Exec(netbootdBin(t), "status", "--pin-dir", pins, "sv0")
	if err != nil || !strings.Contains(status, "attached, 2/") {
		t.Fatalf("netbootd status with no daemon: %v\n%s", err, status)
	}
	if !strings.Contains(status, "offer ") {
		t.Errorf("status lacks counters:\n%s", status)
	}

	d2 := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, state, "--xdp", "native", "--pin-dir", pins)
	if !strings.Contains(d2.logs(), "adopted_pinned=true") {
		t.Errorf("the new daemon did not adopt the pinned program:\n%s", d2.logs())
	}
	if got := udhcpcOnce(t, r.client(t, "02:00:00:00:00:0b")); got["ip"] != "10.10.0.11" {
		t.Errorf("after restart, reserved client got %v", got)
	}
	if err := d2.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if out, err := r.server.Exec(netbootdBin(t), "detach", "--pin-dir", pins, "sv0"); err != nil {
		t.Fatalf("detach: %v\n%s", err, out)
	}
	// Nothing answers reserved clients now: udhcpc gives up.
	c := r.client(t, "02:00:00:00:00:0a")
	if out, err := c.Exec("busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "2", "-T", "1", "-s", writeScript(t, udhcpcScript)); err == nil {
		t.Errorf("a client got an answer after detach:\n%s", out)
	}
	if _, err := r.server.Exec(netbootdBin(t), "status", "--pin-dir", pins, "sv0"); err == nil {
		t.Errorf("status still finds pins after detach")
	}
}

// SIGHUP reloads the configuration: a new reservation is answered at once, by XDP (the maps
// follow); a broken file is rejected with its line and field, and the running one stays.
func TestReloadOnSIGHUP(t *testing.T) {
	r := newXDPRack(t)
	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", "--xdp", "native", "--pin-dir", pins)
	c := r.client(t, "02:00:00:00:07:01")
	if got := udhcpcOnce(t, c); got["ip"] == "10.10.0.42" {
		t.Fatalf("got the future reservation before it exists")
	}

	broken := rackConfig + "  - {mac: \"02:00:00:00:07:01\", ip: 10.99.0.42}\n"
	if err := os.WriteFile(d.configPath, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "reload rejected", func() bool { return strings.Contains(d.logs(), "reload rejected") })
	if !strings.Contains(d.logs(), "reservations[2].ip: 10.99.0.42 is in no configured subnet") {
		t.Errorf("rejection does not name the field:\n%s", d.logs())
	}

	good := rackConfig + "  - {mac: \"02:00:00:00:07:01\", ip: 10.10.0.42, hostname: late}\n"
	if err := os.WriteFile(d.configPath, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "reloaded", func() bool { return strings.Contains(d.logs(), "configuration reloaded") })
	offers := d.metric("netbootd_xdp_packets_total", `result="offer"`)
	if got := udhcpcOnce(t, c); got["ip"] != "10.10.0.42" || got["hostname"] != "late" {
		t.Errorf("after reload the new reservation got %v", got)
	}
	if n := d.metric("netbootd_xdp_packets_total", `result="offer"`); n <= offers {
		t.Errorf("the new reservation was not answered by XDP (offers %v → %v)", offers, n)
	}
}

// Another program's XDP on the interface is not cut off: attach refuses, naming the program and
// the way out; with --xdp-replace it takes over and answers.
func TestRefusesForeignXDP(t *testing.T) {
	r := newXDPRack(t)
	pins := pinDir(t, r)
	if err := r.server.Do(t, func() error { return xdppass.Attach("sv0", false) }); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "netbootd.yaml")
	if err := os.WriteFile(cfg, []byte(rackConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := r.server.Exec("timeout", "20", netbootdBin(t), "attach", "sv0", "--config", cfg, "--state-dir", t.TempDir(),
		"--http-listen", "10.10.0.1:8080", "--xdp", "native", "--pin-dir", pins)
	if err == nil || !strings.Contains(out, "already runs another XDP program") || !strings.Contains(out, "--xdp-replace") {
		t.Fatalf("attach over a foreign program: err %v, output:\n%s", err, out)
	}
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", "--xdp", "native", "--pin-dir", pins, "--xdp-replace")
	c := r.client(t, "02:00:00:00:00:0a")
	if ip := udhcpcOnce(t, c)["ip"]; ip != "10.10.0.10" {
		t.Errorf("after taking over: got %q", ip)
	}
	if d.metric("netbootd_xdp_packets_total", `result="ack"`) == 0 {
		t.Errorf("after taking over, the fast path did not answer")
	}
}
