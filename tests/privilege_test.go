//go:build integration

package tests

import (
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/netns"
)

// neededCaps is what `netbootd attach` needs with the fast path on, as measured (see
// deploy/systemd/README.md) and granted by deploy/systemd/netbootd@.service.
var neededCaps = []string{"net_bind_service", "net_raw", "bpf", "net_admin", "perfmon"}

// capBits is each capability's number (linux/capability.h).
var capBits = map[string]uint{"net_bind_service": 10, "net_admin": 12, "net_raw": 13, "perfmon": 38, "bpf": 39}

// unprivileged is everything a netbootd run as user nobody needs on disk: a directory nobody can
// reach (t.TempDir's parents are 0700), a copy of the binary in it, a state directory, a TFTP root
// and a pin directory on the test bpffs, the last two owned by nobody.
type unprivileged struct {
	uid, gid int
	dir      string
	bin      string
	state    string
	tftpRoot string
	pins     string
}

func newUnprivileged(t *testing.T, r *rack) *unprivileged {
	t.Helper()
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("these tests run netbootd as user nobody: %v", err)
	}
	u := &unprivileged{}
	u.uid, _ = strconv.Atoi(nobody.Uid)
	u.gid, _ = strconv.Atoi(nobody.Gid)
	if u.dir, err = os.MkdirTemp("", "netbootd-priv-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(u.dir) })
	privFatal(t, os.Chmod(u.dir, 0o755))

	u.bin = filepath.Join(u.dir, "netbootd")
	copyBinary(t, netbootdBin(t), u.bin)
	u.state = filepath.Join(u.dir, "state")
	privFatal(t, os.Mkdir(u.state, 0o750))
	privFatal(t, os.Chown(u.state, u.uid, u.gid))
	u.tftpRoot = filepath.Join(u.dir, "tftp")
	privFatal(t, os.Mkdir(u.tftpRoot, 0o755))
	privFatal(t, os.WriteFile(filepath.Join(u.tftpRoot, "hello.txt"), []byte("served by nobody\n"), 0o644))

	u.pins = pinDir(t, r)
	// The bpffs root must let others through (a fresh bpffs is 1777; a mode=0700 one is not).
	if st, err := os.Stat(testBPFFS); err == nil && st.Mode().Perm()&0o001 == 0 {
		privFatal(t, os.Chmod(testBPFFS, st.Mode().Perm()|0o111|os.ModeSticky))
	}
	privFatal(t, os.Chown(u.pins, u.uid, u.gid))
	return u
}

// start runs `netbootd attach iface` in ns through setpriv as user nobody, with caps as its
// inheritable, ambient and bounding sets and nothing else (what systemd's AmbientCapabilities=
// and CapabilityBoundingSet= give). It does not wait for the daemon to be ready.
func (u *unprivileged) start(t *testing.T, ns *netns.NS, iface, serverIP, config string, caps []string, extra ...string) *daemon {
	t.Helper()
	cfg := filepath.Join(u.dir, fmt.Sprintf("netbootd-%d.yaml", time.Now().UnixNano()))
	privFatal(t, os.WriteFile(cfg, []byte(config), 0o644))
	set := "-all"
	for _, c := range caps {
		set += ",+" + c
	}
	d := &daemon{t: t, ns: ns, stateDir: u.state, httpAddr: serverIP + ":80", mgmtAddr: mgmtListen(extra), done: make(chan struct{}), configPath: cfg}
	args := []string{"--reuid=" + strconv.Itoa(u.uid), "--regid=" + strconv.Itoa(u.gid), "--clear-groups",
		"--inh-caps=" + set, "--ambient-caps=" + set, "--bounding-set=" + set, "--",
		u.bin, "attach", iface, "--config", cfg, "--state-dir", u.state, "--http-listen", d.httpAddr,
		"--pin-dir", u.pins, "--log-level", "debug"}
	d.cmd = ns.Cmd(t, "setpriv", append(args, extra...)...)
	d.cmd.Stdout = &lockedWriter{d: d}
	d.cmd.Stderr = &lockedWriter{d: d}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start netbootd through setpriv: %v", err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		_ = d.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("netbootd (caps %v) log:\n%s", caps, d.logs())
		}
	})
	return d
}

// netbootd as user nobody with exactly the capabilities it needs: XDP (generic mode) answers a
// reserved udhcpc, the control plane an unknown one, TFTP and /metrics are served, and the
// process holds those capabilities and no others.
func TestRunsAsUnprivilegedUser(t *testing.T) {
	r := newXDPRack(t)
	u := newUnprivileged(t, r)
	config := rackConfig + "tftp:\n  root: " + u.tftpRoot + "\n"
	d := u.start(t, r.server, "sv0", "10.10.0.1", config, neededCaps, "--xdp", "generic")
	d.waitReady()
	if !strings.Contains(d.logs(), "mode=generic") {
		t.Fatalf("the fast path is not attached in generic mode:\n%s", d.logs())
	}

	// The process is nobody with exactly the granted capabilities (ip netns exec and setpriv
	// exec, so the started process is netbootd itself).
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, c := range neededCaps {
		want |= 1 << capBits[c]
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	if fields["Name"] != "netbootd" || !strings.HasPrefix(fields["Uid"], strconv.Itoa(u.uid)+"\t") {
		t.Errorf("process %d: Name %q Uid %q, want netbootd as uid %d", d.cmd.Process.Pid, fields["Name"], fields["Uid"], u.uid)
	}
	for _, k := range []string{"CapEff", "CapPrm", "CapAmb", "CapBnd"} {
		if got := fields[k]; got != fmt.Sprintf("%016x", want) {
			t.Errorf("%s = %s, want %016x (%v)", k, got, want, neededCaps)
		}
	}

	reserved := udhcpcOnce(t, r.client(t, "02:00:00:00:00:0a"))
	if reserved["ip"] != "10.10.0.10" || reserved["hostname"] != "node10" {
		t.Errorf("reserved client got %v", reserved)
	}
	if n := d.metric("netbootd_dhcp_replies_total"); n != 0 {
		t.Errorf("the control plane sent %v replies: XDP should have answered the reserved client", n)
	}
	if o, a := d.metric("netbootd_xdp_packets_total", `result="offer"`), d.metric("netbootd_xdp_packets_total", `result="ack"`); o < 1 || a < 1 {
		t.Errorf("XDP counted %v offers and %v acks, want >= 1 each", o, a)
	}

	c := r.client(t, "02:00:00:00:08:01")
	pooled := udhcpcOnce(t, c)
	if ip := mustAddr(t, pooled["ip"]); ip.Compare(mustAddr(t, "10.10.0.100")) < 0 || ip.Compare(mustAddr(t, "10.10.0.150")) > 0 {
		t.Errorf("unknown client got %s, want 10.10.0.100-150", ip)
	}
	if n := d.metric("netbootd_dhcp_replies_total", `type="ACK"`); n < 1 {
		t.Errorf("the control plane did not answer the unknown client")
	}

	// TFTP from the client, over its new address.
	if out, err := c.Exec("curl", "-sS", "--max-time", "5", "tftp://10.10.0.1/hello.txt"); err != nil || out != "served by nobody\n" {
		t.Errorf("TFTP: %v: %q", err, out)
	}
	if n := d.metric("netbootd_tftp_transfers_completed_total"); n < 1 {
		t.Errorf("netbootd_tftp_transfers_completed_total = %v after a download", n)
	}

	// What it wrote belongs to nobody.
	for _, p := range []string{filepath.Join(u.state, "leases.db"), filepath.Join(u.pins, "sv0", "link")} {
		st, err := os.Stat(p)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if uid := st.Sys().(*syscall.Stat_t).Uid; int(uid) != u.uid {
			t.Errorf("%s is owned by uid %d, want %d", p, uid, u.uid)
		}
	}
	if err := d.stop(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
}

// Started without one capability it needs, netbootd exits at once, non-zero, naming the
// capability and what it is for (the check of cmd/netbootd/caps.go).
func TestMissingCapabilityIsNamed(t *testing.T) {
	r := newRack(t)
	u := newUnprivileged(t, r)
	for _, tc := range []struct {
		drop string
		want []string
	}{
		{"net_bind_service", []string{"missing CAP_NET_BIND_SERVICE (bind UDP 67 for DHCP, UDP 69 for TFTP and TCP 80 for HTTP, ports below 1024)"}},
		{"bpf", []string{"missing CAP_BPF (", "or run with --xdp off"}},
		{"perfmon", []string{"missing CAP_PERFMON (", "or run with --xdp off"}},
	} {
		t.Run("without "+tc.drop, func(t *testing.T) {
			var caps []string
			for _, c := range neededCaps {
				if c != tc.drop {
					caps = append(caps, c)
				}
			}
			start := time.Now()
			d := u.start(t, r.server, "sv0", "10.10.0.1", rackConfig, caps, "--xdp", "generic")
			select {
			case <-d.done:
			case <-time.After(patience):
				t.Fatalf("netbootd without CAP_%s still runs after %v:\n%s", strings.ToUpper(tc.drop), patience, d.logs())
			}
			took := time.Since(start)
			if d.cmd.ProcessState.Success() {
				t.Fatalf("netbootd without CAP_%s exited 0:\n%s", strings.ToUpper(tc.drop), d.logs())
			}
			logs := d.logs()
			for _, w := range append(tc.want, "running as uid "+strconv.Itoa(u.uid), "this run needs CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_BPF CAP_NET_ADMIN CAP_PERFMON") {
				if !strings.Contains(logs, w) {
					t.Errorf("the error does not say %q:\n%s", w, logs)
				}
			}
			_, missing, _ := strings.Cut(logs, "missing ")
			missing, _, _ = strings.Cut(missing, "; running as")
			if n := strings.Count(missing, "CAP_"); n != 1 || !strings.HasPrefix(missing, "CAP_"+strings.ToUpper(tc.drop)+" (") {
				t.Errorf("want CAP_%s alone named missing, got %q", strings.ToUpper(tc.drop), missing)
			}
			t.Logf("gave up after %v", took) // within patience (above): speed is not asserted
		})
	}
}

// privFatal fails the test on err.
func privFatal(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// copyBinary copies an executable (mode 0755).
func copyBinary(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	privFatal(t, out.Close())
}
