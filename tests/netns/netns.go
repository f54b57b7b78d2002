// Package netns builds throw-away network namespaces, veth pairs and bridges for tests that must
// cross a real network. Everything it creates is removed by t.Cleanup, also when the test fails;
// what a test process killed before its cleanups left behind (go test's -timeout panic, SIGKILL)
// is removed by the next New (owners.go).
package netns

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NS is a network namespace owned by one test.
type NS struct {
	name string

	mu   sync.Mutex
	cmds []*exec.Cmd
}

// RequireRoot fails the test loudly when it cannot create namespaces: these tests never skip.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("this test needs root to create network namespaces (run it as root, e.g. `sudo make test`)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("this test needs iproute2's `ip`: %v (run scripts/deps.sh)", err)
	}
}

// New creates namespace "<prefix>-<random>" with loopback up. At cleanup every process started
// through Cmd is killed and the namespace is deleted.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random namespace name: %v", err)
	}
	reclaimOrphans()
	n := &NS{name: prefix + "-" + hex.EncodeToString(b)}
	if err := claim(n.name); err != nil {
		t.Fatalf("namespace owner record: %v", err)
	}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		release(n.name)
		t.Fatalf("ip netns add %s: %v: %s", n.name, err, out)
	}
	t.Cleanup(n.remove)
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// Name is the namespace's name as `ip netns` knows it.
func (n *NS) Name() string { return n.name }

func (n *NS) remove() {
	n.mu.Lock()
	cmds := n.cmds
	n.cmds = nil
	n.mu.Unlock()
	for _, c := range cmds {
		if c.Process != nil && c.ProcessState == nil {
			_ = c.Process.Kill()
		}
	}
	deleteNamespace(n.name)
}

// deleteNamespace kills whatever still lives in namespace name (daemons that forked), deletes
// it and its owner record.
func deleteNamespace(name string) {
	if !exists(name) {
		release(name)
		return
	}
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
		self := strconv.Itoa(os.Getpid())
		for _, pid := range strings.Fields(string(out)) {
			if pid == self { // the test process itself, through a thread that entered the namespace
				continue
			}
			_ = exec.Command("kill", "-9", pid).Run()
		}
	}
	for i := 0; i < 20; i++ {
		if exec.Command("ip", "netns", "del", name).Run() == nil {
			release(name)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "netns: could not delete namespace %s\n", name)
}

// Run runs a command inside the namespace and returns its combined output; it fails the test on error.
func (n *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Exec(name, args...)
	if err != nil {
		t.Fatalf("in %s: %s %s: %v\n%s", n.name, name, strings.Join(args, " "), err, out)
	}
	return out
}

// Exec runs a command inside the namespace and returns its combined output and error, for
// callers that expect failures.
func (n *NS) Exec(name string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...).CombinedOutput()
	return string(out), err
}

// Cmd returns a command that runs inside the namespace. The caller starts it; it is killed at
// cleanup if it is still running.
func (n *NS) Cmd(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	c := exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	n.mu.Lock()
	n.cmds = append(n.cmds, c)
	n.mu.Unlock()
	return c
}

// Do runs fn on an OS thread that has entered the namespace, for Go sockets and netlink handles.
// The thread is discarded afterwards, so no other goroutine ever runs in the namespace by accident.
func (n *NS) Do(t testing.TB, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread dies with the goroutine instead of returning to the pool
		// still inside the namespace.
		f, err := os.Open("/var/run/netns/" + n.name)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", n.name, err)
			return
		}
		defer f.Close()
		// Go back afterwards too: if this goroutine ran on the main thread, Go keeps that thread,
		// and a main thread left inside the namespace makes the process one of its "pids".
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("open own namespace: %w", err)
			return
		}
		defer orig.Close()
		defer unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) //nolint:errcheck // best effort; the thread is discarded anyway
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", n.name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Veth creates a veth pair a<->b with a in n and b in peer, brings both up, assigns the CIDR
// addresses that are not empty and turns TX checksum offload off (raw sockets and XDP would
// otherwise see unfinished UDP checksums).
func Veth(t testing.TB, n *NS, a, addrA string, peer *NS, b, addrB string) {
	t.Helper()
	n.Run(t, "ip", "link", "add", a, "type", "veth", "peer", "name", b, "netns", peer.name)
	for _, end := range []struct {
		ns        *NS
		dev, cidr string
	}{{n, a, addrA}, {peer, b, addrB}} {
		if end.cidr != "" {
			end.ns.Run(t, "ip", "addr", "add", end.cidr, "dev", end.dev)
		}
		end.ns.Run(t, "ip", "link", "set", end.dev, "up")
		if _, err := end.ns.Exec("ethtool", "-K", end.dev, "tx", "off"); err != nil {
			t.Fatalf("ethtool -K %s tx off in %s: %v (is ethtool installed?)", end.dev, end.ns.name, err)
		}
	}
}

// Bridge creates bridge br in n with STP off and no forward delay, and brings it up.
func (n *NS) Bridge(t testing.TB, br string) {
	t.Helper()
	n.Run(t, "ip", "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0")
	n.Run(t, "ip", "link", "set", br, "up")
}

// Enslave puts dev (in n) into bridge br (in n).
func (n *NS) Enslave(t testing.TB, dev, br string) {
	t.Helper()
	n.Run(t, "ip", "link", "set", dev, "master", br)
}
