//go:build integration

package tests

import (
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// What a rolling upgrade of the chart's DaemonSet does on a node (the old pod stopped with
// SIGTERM, then the new one started on the same pins; maxUnavailable 1, no surge), to the
// processes only, without kubelet: a reserved client asking for a lease every 100 ms throughout
// is answered every time, and the new daemon, a build stamped with another version, reports
// that version (netbootd_build_info) and adopted the pinned program.
func TestNodeUpgradeToAnotherVersion(t *testing.T) {
	r := newXDPRack(t)
	pins := pinDir(t, r)
	state := t.TempDir()
	v1 := buildinfoVersion(t, netbootdBin(t))
	v2 := v1 + ".next"
	next := filepath.Join(t.TempDir(), "netbootd")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X github.com/netbootd/netbootd/control/buildinfo.version="+v2, "-o", next, "./cmd/netbootd")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the next version: %v\n%s", err, out)
	}

	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, state, "--xdp", "native", "--pin-dir", pins)
	if got := d.metric("netbootd_build_info", `version="`+v1+`"`); got != 1 {
		t.Fatalf("netbootd_build_info{version=%q} = %v, want 1", v1, got)
	}
	c := r.client(t, "02:00:00:00:00:0a")
	var (
		mu                   sync.Mutex
		answered, unanswered int
		failures             []string
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			out, err := c.Exec("busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "1", "-T", "2", "-s", writeScript(t, udhcpcScript))
			mu.Lock()
			if err == nil && boundFields(out)["ip"] == "10.10.0.10" {
				answered++
			} else {
				unanswered++
				failures = append(failures, strings.TrimSpace(out))
			}
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	counted := func(n int) {
		t.Helper()
		var start int
		mu.Lock()
		start = answered + unanswered
		mu.Unlock()
		waitUntil(t, "the client's requests", patience, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return answered+unanswered >= start+n
		})
	}
	counted(3)

	if err := d.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	counted(3)                     // between the two daemons: the pinned program alone
	t.Setenv("NETBOOTD_BIN", next) // the new image's binary (restored when the test ends)
	d2 := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, state, "--xdp", "native", "--pin-dir", pins)
	counted(3)
	close(stop)
	<-done

	if unanswered != 0 || answered < 9 {
		t.Errorf("across the upgrade: %d answered, %d unanswered, want all of at least 9 answered:\n%s", answered, unanswered, strings.Join(failures, "\n---\n"))
	}
	t.Logf("across the upgrade: %d requests, all answered", answered)
	if got := d2.metric("netbootd_build_info", `version="`+v2+`"`); got != 1 {
		t.Errorf("the new daemon's netbootd_build_info{version=%q} = %v, want 1", v2, got)
	}
	if !strings.Contains(d2.logs(), "adopted_pinned=true") || !strings.Contains(d2.logs(), "version="+v2) {
		t.Errorf("the new daemon did not adopt the pinned program or log its version %s:\n%s", v2, d2.logs())
	}
}

// buildinfoVersion is the version `netbootd version` of bin reports.
func buildinfoVersion(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "version").Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 2 || f[0] != "netbootd" {
		t.Fatalf("%s version: %v %q", bin, err, out)
	}
	return f[1]
}
