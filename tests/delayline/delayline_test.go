//go:build integration

package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/netns"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "delayline-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "delayline")
	// go test puts its own GOROOT/bin first in PATH; the working directory is this package.
	if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build delayline: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// line is a running delayline between two fresh namespaces.
type line struct {
	a, b *netns.NS
	cmd  *exec.Cmd
	out  chan string // stdout lines after "delayline ready"
	errb *strings.Builder
	done chan struct{}
}

// startLine creates namespaces nbdl-a-<random> and nbdl-b-<random> (deleted at cleanup) and runs
// delayline between them with the given extra flags, waiting for "delayline ready".
func startLine(t testing.TB, flags ...string) *line {
	t.Helper()
	a := netns.New(t, "nbdl-a")
	b := netns.New(t, "nbdl-b")
	args := append([]string{
		"-a", a.Name(), "-ia", "dla", "-addr-a", "10.77.0.1/24",
		"-b", b.Name(), "-ib", "dlb", "-addr-b", "10.77.0.2/24",
		"-t", "2m",
	}, flags...)
	cmd := exec.Command(binPath, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	l := &line{a: a, b: b, cmd: cmd, out: make(chan string, 100), errb: &strings.Builder{}, done: make(chan struct{})}
	cmd.Stderr = &lockedWriter{b: l.errb}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Registered after the namespaces, so it runs before they are deleted.
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-l.done
		}
	})
	ready := make(chan struct{})
	go func() {
		defer close(l.done)
		defer close(l.out)
		sc := bufio.NewScanner(stdout)
		isReady := false
		for sc.Scan() {
			if !isReady && sc.Text() == "delayline ready" {
				isReady = true
				close(ready)
				continue
			}
			l.out <- sc.Text()
		}
		_ = cmd.Wait()
	}()
	select {
	case <-ready:
	case <-l.done:
		t.Fatalf("delayline %s exited before it was ready: %s", strings.Join(args, " "), l.errb.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("delayline %s not ready after 15s: %s", strings.Join(args, " "), l.errb.String())
	}
	t.Logf("delayline %s ready", strings.Join(flags, " "))
	return l
}

type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

type counts struct{ forwarded, dropped, overflow, errors uint64 }

var countRE = regexp.MustCompile(`^(a->b|b->a) forwarded=(\d+) dropped=(\d+) overflow=(\d+) errors=(\d+)$`)

// stop sends SIGTERM and returns the per-direction counters delayline printed.
func (l *line) stop(t testing.TB) map[string]counts {
	t.Helper()
	if err := l.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM delayline: %v", err)
	}
	res := map[string]counts{}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s, ok := <-l.out:
			if !ok {
				<-l.done
				if len(res) != 2 {
					t.Fatalf("delayline printed no counters; stderr: %s", l.errb.String())
				}
				if !l.cmd.ProcessState.Success() {
					t.Fatalf("delayline exited with %v; stderr: %s", l.cmd.ProcessState, l.errb.String())
				}
				return res
			}
			t.Logf("delayline: %s", s)
			if m := countRE.FindStringSubmatch(s); m != nil {
				n := func(i int) uint64 { v, _ := strconv.ParseUint(m[i], 10, 64); return v }
				res[m[1]] = counts{n(2), n(3), n(4), n(5)}
			}
		case <-timeout:
			t.Fatalf("delayline did not exit within 10s of SIGTERM")
		}
	}
}

type pingResult struct {
	sent, received int
	min, avg, max  time.Duration
}

var (
	pingCountRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)
	pingRTTRE   = regexp.MustCompile(`rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/([\d.]+)/`)
)

// ping runs ping in namespace a towards 10.77.0.2 and parses its summary. ping's exit status is
// ignored (it is non-zero when replies are lost); a missing summary fails the test.
func (l *line) ping(t *testing.T, args ...string) pingResult {
	t.Helper()
	out, _ := l.a.Exec("ping", append(args, "10.77.0.2")...)
	m := pingCountRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping %s: no summary:\n%s", strings.Join(args, " "), out)
	}
	var r pingResult
	r.sent, _ = strconv.Atoi(m[1])
	r.received, _ = strconv.Atoi(m[2])
	if m := pingRTTRE.FindStringSubmatch(out); m != nil {
		ms := func(s string) time.Duration {
			f, _ := strconv.ParseFloat(s, 64)
			return time.Duration(f * float64(time.Millisecond))
		}
		r.min, r.avg, r.max = ms(m[1]), ms(m[2]), ms(m[3])
	}
	t.Logf("ping %s: %d/%d received, rtt min/avg/max = %v/%v/%v", strings.Join(args, " "), r.received, r.sent, r.min, r.avg, r.max)
	return r
}

func TestDelay(t *testing.T) {
	const delay = 2 * time.Millisecond
	l := startLine(t, "-delay", delay.String())
	r := l.ping(t, "-c", "20", "-i", "0.01", "-W", "2")
	if r.received != r.sent || r.sent != 20 {
		t.Errorf("%d of %d pings answered without loss configured", r.received, r.sent)
	}
	if r.avg < 2*delay || r.avg > 2*delay+3*time.Millisecond {
		t.Errorf("average RTT %v, want within [%v, %v]", r.avg, 2*delay, 2*delay+3*time.Millisecond)
	}
	if r.min < 2*delay {
		t.Errorf("minimum RTT %v is below 2*delay = %v", r.min, 2*delay)
	}
	c := l.stop(t)
	for _, dir := range []string{"a->b", "b->a"} {
		if c[dir].forwarded < 20 || c[dir].dropped != 0 || c[dir].overflow != 0 || c[dir].errors != 0 {
			t.Errorf("%s counters %+v, want >= 20 forwarded and nothing dropped", dir, c[dir])
		}
	}
	l.devicesGone(t)
}

// devicesGone checks that the TUN devices vanished with the process.
func (l *line) devicesGone(t *testing.T) {
	t.Helper()
	if out, err := l.a.Exec("ip", "link", "show", "dla"); err == nil {
		t.Errorf("dla still exists in %s after delayline exited:\n%s", l.a.Name(), out)
	}
	if out, err := l.b.Exec("ip", "link", "show", "dlb"); err == nil {
		t.Errorf("dlb still exists in %s after delayline exited:\n%s", l.b.Name(), out)
	}
}

func TestTimeLimit(t *testing.T) {
	l := startLine(t, "-delay", "1ms", "-t", "1s")
	start := time.Now()
	var lines []string
	timeout := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case s, ok := <-l.out:
			if !ok {
				done = true
				break
			}
			lines = append(lines, s)
		case <-timeout:
			t.Fatalf("delayline -t 1s still running after 10s")
		}
	}
	<-l.done
	t.Logf("exited after %v: %q", time.Since(start).Round(time.Millisecond), lines)
	if len(lines) < 2 || !countRE.MatchString(lines[0]) || !countRE.MatchString(lines[1]) {
		t.Errorf("no counters printed at the time limit: %q; stderr: %s", lines, l.errb.String())
	}
	if !l.cmd.ProcessState.Success() {
		t.Errorf("delayline exited with %v", l.cmd.ProcessState)
	}
	l.devicesGone(t)
}

func TestLoss(t *testing.T) {
	l := startLine(t, "-delay", "500us", "-loss", "0.2", "-seed", "1")
	r := l.ping(t, "-c", "50", "-i", "0.01", "-W", "1")
	if r.received == 0 || r.received == r.sent {
		t.Errorf("%d of %d pings answered with -loss 0.2 each way, want some but not all", r.received, r.sent)
	}
	c := l.stop(t)
	for _, dir := range []string{"a->b", "b->a"} {
		if c[dir].dropped == 0 || c[dir].forwarded == 0 {
			t.Errorf("%s counters %+v, want some forwarded and some dropped", dir, c[dir])
		}
	}
}

// TestRTT measures RTT with back-to-back pings (-i 0) for the delays benchmarks use.
func TestRTT(t *testing.T) {
	for _, delay := range []time.Duration{500 * time.Microsecond, 2500 * time.Microsecond} {
		t.Run(delay.String(), func(t *testing.T) {
			l := startLine(t, "-delay", delay.String())
			r := l.ping(t, "-c", "1000", "-i", "0", "-q")
			if r.received != r.sent {
				t.Errorf("%d of %d pings answered without loss configured", r.received, r.sent)
			}
			if r.avg < 2*delay || r.avg > 2*delay+3*time.Millisecond {
				t.Errorf("average RTT %v, want within [%v, %v]", r.avg, 2*delay, 2*delay+3*time.Millisecond)
			}
			l.stop(t)
		})
	}
}

// udpPair opens a UDP receiver in rxNS on dst:9 and a sender in txNS connected to it.
func udpPair(t testing.TB, txNS, rxNS *netns.NS, dst net.IP) (tx, rx *net.UDPConn) {
	t.Helper()
	err := rxNS.Do(t, func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: dst, Port: 9})
		rx = c
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", rxNS.Name(), err)
	}
	t.Cleanup(func() { rx.Close() })
	// SO_RCVBUFFORCE: the receiver must not be what loses packets.
	if sc, err := rx.SyscallConn(); err == nil {
		_ = sc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 32<<20)
		})
	}
	err = txNS.Do(t, func() error {
		c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: dst, Port: 9})
		tx = c
		return err
	})
	if err != nil {
		t.Fatalf("dial in %s: %v", txNS.Name(), err)
	}
	t.Cleanup(func() { tx.Close() })
	return tx, rx
}

type flow struct {
	tx, rx    *net.UDPConn
	sent, got uint64
}

// blast sends 64-byte datagrams on every flow at once for d, each at rate packets/s (0: as fast
// as possible), and records how many each sent and received.
func blast(t testing.TB, flows []*flow, rate int, d time.Duration) {
	t.Helper()
	var wg sync.WaitGroup
	for _, f := range flows {
		f.sent, f.got = 0, 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			var recv atomic.Uint64
			_ = f.rx.SetReadDeadline(time.Time{})
			rxDone := make(chan struct{})
			go func() {
				defer close(rxDone)
				buf := make([]byte, 2048)
				for {
					if _, err := f.rx.Read(buf); err != nil {
						return
					}
					recv.Add(1)
				}
			}()
			payload := make([]byte, 64)
			start := time.Now()
			for {
				el := time.Since(start)
				if el >= d {
					break
				}
				if rate > 0 {
					if f.sent >= uint64(el.Seconds()*float64(rate)) {
						time.Sleep(100 * time.Microsecond)
						continue
					}
				}
				if _, err := f.tx.Write(payload); err == nil {
					f.sent++
				}
			}
			time.Sleep(200 * time.Millisecond) // let the line drain
			_ = f.rx.SetReadDeadline(time.Now())
			<-rxDone
			f.got = recv.Load()
		}()
	}
	wg.Wait()
}

// TestNoLossBothWays checks that the line loses nothing at a modest rate each way at once. How
// fast it can go is BenchmarkPacketRate's business: a timed threshold would fail on a busy machine.
func TestNoLossBothWays(t *testing.T) {
	l := startLine(t, "-delay", "500us")
	ab := &flow{}
	ab.tx, ab.rx = udpPair(t, l.a, l.b, net.IPv4(10, 77, 0, 2))
	ba := &flow{}
	ba.tx, ba.rx = udpPair(t, l.b, l.a, net.IPv4(10, 77, 0, 1))
	blast(t, []*flow{ab, ba}, 2000, time.Second)
	for i, f := range []*flow{ab, ba} {
		t.Logf("flow %d: sent %d, received %d", i, f.sent, f.got)
		if f.sent == 0 || f.got != f.sent {
			t.Errorf("flow %d: %d of %d packets arrived", i, f.got, f.sent)
		}
	}
	l.stop(t)
}

// BenchmarkPacketRate reports what a 500us line carries: paced at 50k packets/s each way at
// once (delivered share), and unpaced one way (delivered packets/s).
func BenchmarkPacketRate(b *testing.B) {
	for b.Loop() {
		l := startLine(b, "-delay", "500us")
		ab := &flow{}
		ab.tx, ab.rx = udpPair(b, l.a, l.b, net.IPv4(10, 77, 0, 2))
		ba := &flow{}
		ba.tx, ba.rx = udpPair(b, l.b, l.a, net.IPv4(10, 77, 0, 1))
		const d = 2 * time.Second
		blast(b, []*flow{ab, ba}, 50000, d)
		b.ReportMetric(float64(ab.got+ba.got)/float64(ab.sent+ba.sent), "delivered@50kpps-each-way")
		blast(b, []*flow{ab}, 0, d)
		b.ReportMetric(float64(ab.got)/d.Seconds(), "pps-one-way")
		l.stop(b)
	}
}
