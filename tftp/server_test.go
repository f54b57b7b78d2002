package tftp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	pin "github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/netbootd/netbootd/tests/testrun"
)

type testServer struct {
	*Server
	addr string
	reg  *prometheus.Registry
}

// startServer starts a server for the test; setup, if given, adjusts it before it runs.
func startServer(t *testing.T, cfg Config, setup ...func(*Server)) *testServer {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(s)
	}
	testrun.Run(t, s.Run)
	return &testServer{Server: s, addr: s.Addr().String(), reg: reg}
}

// testWriter sends the server's log to the test's log, shown for failing tests.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func randomData(n int, seed int64) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func pinClient(t *testing.T, addr string) *pin.Client {
	t.Helper()
	c, err := pin.NewClient(addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(2 * time.Second)
	c.SetBackoff(func(int) time.Duration { return 10 * time.Millisecond })
	return c
}

func pinFetch(c *pin.Client, name, mode string) ([]byte, int64, bool, error) {
	wt, err := c.Receive(name, mode)
	if err != nil {
		return nil, 0, false, err
	}
	size, ok := wt.(pin.IncomingTransfer).Size()
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, 0, false, err
	}
	return buf.Bytes(), size, ok, nil
}

func TestInteropPin(t *testing.T) {
	root := t.TempDir()
	sizes := []int{0, 511, 512, 513, 3 << 20}
	files := map[string][]byte{}
	for i, n := range sizes {
		name := fmt.Sprintf("f%d.bin", n)
		files[name] = randomData(n, int64(i))
		writeFile(t, filepath.Join(root, name), files[name])
	}
	ts := startServer(t, Config{Root: root})
	ipxe := randomData(70_000, 99)
	ts.AddFile("ipxe.efi", ipxe)
	files["/ipxe.efi"] = ipxe

	for _, opt := range []struct {
		name    string
		blksize int
		tsize   bool
	}{{"default", 0, false}, {"blksize1468+tsize", 1468, true}, {"blksize512+tsize", 512, true}} {
		for name, data := range files {
			t.Run(opt.name+"/"+name, func(t *testing.T) {
				c := pinClient(t, ts.addr)
				if opt.blksize != 0 {
					c.SetBlockSize(opt.blksize)
				}
				c.RequestTSize(opt.tsize)
				got, size, ok, err := pinFetch(c, name, "octet")
				if err != nil {
					t.Fatal(err)
				}
				if sha256.Sum256(got) != sha256.Sum256(data) {
					t.Fatalf("sha256 mismatch: got %d bytes, want %d", len(got), len(data))
				}
				if opt.tsize && (!ok || size != int64(len(data))) {
					t.Fatalf("tsize = %d, %v; want %d", size, ok, len(data))
				}
			})
		}
	}
	// Transfers are accounted once their final ACK is in; give the last one a moment.
	waitFor(t, ts.reg, func() bool { return counter(t, ts.reg, "netbootd_tftp_active_transfers", "") == 0 })
	n := float64(3 * len(files))
	if got := counter(t, ts.reg, "netbootd_tftp_transfers_started_total", ""); got != n {
		t.Errorf("started = %v, want %v", got, n)
	}
	if got := counter(t, ts.reg, "netbootd_tftp_transfers_completed_total", ""); got != n {
		t.Errorf("completed = %v, want %v", got, n)
	}
	if got := counter(t, ts.reg, "netbootd_tftp_negotiated_blksize", ""); got != n {
		t.Errorf("blksize histogram count = %v, want %v", got, n)
	}
}

func TestNetasciiPin(t *testing.T) {
	root := t.TempDir()
	text := []byte("#!ipxe\ndhcp\r\nchain http://x/boot\n")
	writeFile(t, filepath.Join(root, "boot.ipxe"), text)
	ts := startServer(t, Config{Root: root})
	c := pinClient(t, ts.addr)
	c.RequestTSize(true)
	got, size, _, err := pinFetch(c, "boot.ipxe", "netascii")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(toNetascii(text))); size != want {
		t.Errorf("tsize = %d, want converted size %d", size, want)
	}
	if !bytes.Equal(got, text) {
		t.Errorf("got %q, want %q", got, text)
	}
}

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, reg *prometheus.Registry, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		t.Log(mf.String())
	}
	t.Fatal("condition not reached")
}

// counter returns a metric's value (a histogram's sample count), summed over label sets
// whose labels contain match.
func counter(t *testing.T, reg *prometheus.Registry, name, match string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if match != "" && !labelsContain(m, match) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func labelsContain(m *dto.Metric, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetValue() == v {
			return true
		}
	}
	return false
}

// rawClient is a hand-driven TFTP client for what pin/tftp cannot do.
type rawClient struct {
	t    *testing.T
	conn *net.UDPConn
	srv  *net.UDPAddr
	buf  []byte // reused: a returned packet's Data is valid until the next recv
}

func newRaw(t *testing.T, srv string) *rawClient {
	t.Helper()
	return newRawFrom(t, srv, net.IPv4(127, 0, 0, 1))
}

// newRawFrom is newRaw bound to a given loopback address (127.0.0.0/8 is all local on Linux),
// to stand for another host.
func newRawFrom(t *testing.T, srv string, ip net.IP) *rawClient {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a, err := net.ResolveUDPAddr("udp", srv)
	if err != nil {
		t.Fatal(err)
	}
	return &rawClient{t: t, conn: c, srv: a, buf: make([]byte, 70000)}
}

func (c *rawClient) send(to *net.UDPAddr, b []byte) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDP(b, to); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) recv(timeout time.Duration) (packet, *net.UDPAddr, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	n, from, err := c.conn.ReadFromUDP(c.buf)
	if err != nil {
		return packet{}, nil, err
	}
	p, err := parsePacket(c.buf[:n])
	return p, from, err
}

func (c *rawClient) mustRecv() (packet, *net.UDPAddr) {
	c.t.Helper()
	p, from, err := c.recv(3 * time.Second)
	if err != nil {
		c.t.Fatal(err)
	}
	return p, from
}

func (c *rawClient) expectError(code uint16, msgPart string) {
	c.t.Helper()
	p, _ := c.mustRecv()
	if p.Op != opERROR || p.ErrCode != code || !strings.Contains(p.ErrMsg, msgPart) {
		c.t.Fatalf("got %+v, want ERROR %d %q", p, code, msgPart)
	}
}

func TestProtocolErrors(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "f"), []byte("hello"))
	ts := startServer(t, Config{Root: root})
	c := newRaw(t, ts.addr)

	c.send(c.srv, append([]byte{0, 2}, "f\x00octet\x00"...))
	c.expectError(errAccessViolation, "writes are not supported")

	c.send(c.srv, []byte{0, 42, 1, 2})
	c.expectError(errIllegalOp, "")

	c.send(c.srv, []byte("\x00\x01pxelinux.0"))
	c.expectError(errIllegalOp, "")

	c.send(c.srv, appendRRQ(nil, "f", "mail"))
	c.expectError(errIllegalOp, "mode")

	c.send(c.srv, appendRRQ(nil, "missing", "octet"))
	c.expectError(errFileNotFound, "")

	c.send(c.srv, appendRRQ(nil, "../../etc/passwd", "octet"))
	c.expectError(errAccessViolation, "")

	c.send(c.srv, appendRRQ(nil, "f", "octet", option{"blksize", "4"}))
	c.expectError(errOptionRefused, "")

	c.send(c.srv, appendRRQ(nil, "f", "octet", option{"timeout", "x"}))
	c.expectError(errOptionRefused, "")

	// Only unknown options: no OACK, data straight away.
	c.send(c.srv, appendRRQ(nil, "f", "octet", option{"multicast", ""}))
	p, from := c.mustRecv()
	if p.Op != opDATA || p.Block != 1 || string(p.Data) != "hello" {
		t.Fatalf("got %+v", p)
	}
	if from.Port == c.srv.Port {
		t.Fatal("data came from the listening port, not a new TID")
	}
	c.send(from, appendAck(nil, 1))

	// An ERROR 8 in answer to the OACK ends the transfer quietly.
	c.send(c.srv, appendRRQ(nil, "f", "octet", option{"blksize", "1024"}))
	p, from = c.mustRecv()
	if p.Op != opOACK {
		t.Fatalf("got %+v, want OACK", p)
	}
	c.send(from, appendError(nil, errOptionRefused, "no thanks"))
	if p, _, err := c.recv(300 * time.Millisecond); err == nil {
		t.Fatalf("got %+v after refusing the options", p)
	}
	waitFor(t, ts.reg, func() bool { return counter(t, ts.reg, "netbootd_tftp_transfers_failed_total", "option_refused") == 1 })
}

// fetchWindowed is a hand-driven RFC 7440 client: it checks the OACK, acknowledges every
// window, pretends block dropAt was lost once (reporting the gap with the last in-order
// block), and has another socket poke the transfer port to get ERROR 5.
func fetchWindowed(t *testing.T, srv, name string, blksize, window int, size int64, dropAt int64) []byte {
	t.Helper()
	c := newRaw(t, srv)
	c.send(c.srv, appendRRQ(nil, name, "octet",
		option{"blksize", fmt.Sprint(blksize)}, option{"tsize", "0"}, option{"windowsize", fmt.Sprint(window)},
		option{"timeout", "2"}, option{"x-foo", "1"}))
	p, tid := c.mustRecv()
	want := []option{{"blksize", fmt.Sprint(blksize)}, {"tsize", fmt.Sprint(size)}, {"windowsize", fmt.Sprint(window)}, {"timeout", "2"}}
	if p.Op != opOACK || fmt.Sprint(p.Options) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want OACK %v", p, want)
	}
	c.send(tid, appendAck(nil, 0))

	var got bytes.Buffer
	expect := int64(1) // absolute block number
	inWin := 0
	dropped, foreign := false, false
	for {
		p, from := c.mustRecv()
		if from.String() != tid.String() || p.Op != opDATA {
			t.Fatalf("unexpected %+v from %v", p, from)
		}
		if p.Block == uint16(dropAt) && !dropped && expect == dropAt {
			dropped = true // pretend it was lost
			continue
		}
		if p.Block != uint16(expect) {
			if p.Block == uint16(expect-1) || !dropped {
				continue // an old duplicate
			}
			// Gap: acknowledge the last in-order block; the server restarts after it.
			c.send(tid, appendAck(nil, uint16(expect-1)))
			inWin = 0
			for p.Block != uint16(expect) {
				p, _ = c.mustRecv()
			}
		}
		got.Write(p.Data)
		expect++
		inWin++
		if !foreign && expect == 100 {
			foreign = true
			other := newRaw(t, srv)
			other.send(tid, appendAck(nil, 1))
			other.expectError(errUnknownTID, "unknown transfer ID")
		}
		if len(p.Data) < blksize {
			c.send(tid, appendAck(nil, p.Block))
			break
		}
		if inWin == window {
			inWin = 0
			c.send(tid, appendAck(nil, p.Block))
		}
	}
	return got.Bytes()
}

func TestWindowedTransfer(t *testing.T) {
	data := randomData(100_000, 7)
	small := randomData(600_000, 8)
	ts := startServer(t, Config{MaxWindow: 16})
	ts.AddFile("big", data)
	ts.AddFile("small-blocks", small)
	// windowsize 32 is capped to 16.
	c := newRaw(t, ts.addr)
	c.send(c.srv, appendRRQ(nil, "big", "octet", option{"windowsize", "32"}))
	if p, _ := c.mustRecv(); p.Op != opOACK || p.Options[0] != (option{"windowsize", "16"}) {
		t.Fatalf("got %+v", p)
	}
	if got := fetchWindowed(t, ts.addr, "big", 512, 16, int64(len(data)), 40); !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d", len(got), len(data))
	}
	// 75001 blocks of 8 bytes: the block number wraps past 65535, with a gap right there.
	if got := fetchWindowed(t, ts.addr, "small-blocks", 8, 16, int64(len(small)), 65536); !bytes.Equal(got, small) {
		t.Fatalf("got %d bytes, want %d", len(got), len(small))
	}
	waitFor(t, ts.reg, func() bool { return counter(t, ts.reg, "netbootd_tftp_transfers_completed_total", "") == 2 })
}

func TestSupersedingRRQ(t *testing.T) {
	ts := startServer(t, Config{MaxPerClient: 1})
	ts.AddFile("f", []byte("hello"))
	c := newRaw(t, ts.addr)
	// A PXE-style tsize probe left hanging, then the real request from the same port.
	c.send(c.srv, appendRRQ(nil, "f", "octet", option{"tsize", "0"}))
	if p, _ := c.mustRecv(); p.Op != opOACK {
		t.Fatalf("got %+v", p)
	}
	c.send(c.srv, appendRRQ(nil, "f", "octet", option{"blksize", "1024"}, option{"tsize", "0"}))
	p, tid := c.mustRecv()
	if p.Op != opOACK || len(p.Options) != 2 {
		t.Fatalf("got %+v", p)
	}
	c.send(tid, appendAck(nil, 0))
	if p, _ := c.mustRecv(); p.Op != opDATA || string(p.Data) != "hello" {
		t.Fatalf("got %+v", p)
	}
	c.send(tid, appendAck(nil, 1))
	waitFor(t, ts.reg, func() bool {
		return counter(t, ts.reg, "netbootd_tftp_transfers_completed_total", "") == 1 &&
			counter(t, ts.reg, "netbootd_tftp_transfers_failed_total", "canceled") == 1 &&
			counter(t, ts.reg, "netbootd_tftp_active_transfers", "") == 0
	})
}

func TestStreamedFromDisk(t *testing.T) {
	root := t.TempDir()
	data := randomData(3<<20, 11)
	writeFile(t, filepath.Join(root, "disk.img"), data)
	ts := startServer(t, Config{Root: root, CacheBytes: 1 << 20})
	c := pinClient(t, ts.addr)
	c.SetBlockSize(1468)
	got, _, _, err := pinFetch(c, "disk.img", "octet")
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatal("content differs")
	}
	if got := fetchWindowed(t, ts.addr, "disk.img", 1468, 32, int64(len(data)), 500); !bytes.Equal(got, data) {
		t.Fatal("windowed content differs")
	}
}

func TestSendDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	data := randomData(1<<20, 5)
	prm := params{blksize: 1468, window: 16}
	peer := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	tr, err := newConnTransfer(conn, peer, peer.Addr(), memContent(data), prm)
	if err != nil {
		t.Fatal(err)
	}
	snd := newSender(int64(len(data)), 1468, 16, false, time.Second, 5)
	m := newMetrics()
	a := snd.start(time.Now())
	allocs := testing.AllocsPerRun(50, func() {
		if err := tr.send(snd, a, m); err != nil {
			t.Fatal(err)
		}
		a = snd.onAck(time.Now(), uint16(a.to-1))
		if a.done {
			snd = newSender(int64(len(data)), 1468, 16, false, time.Second, 5)
			a = snd.start(time.Now())
		}
	})
	if allocs > 0 {
		t.Errorf("%v allocations per window", allocs)
	}
}

func TestLimits(t *testing.T) {
	ts := startServer(t, Config{MaxPerClient: 1, MaxTransfers: 2, Timeout: 2 * time.Second})
	ts.AddFile("f", []byte("x"))
	a := newRaw(t, ts.addr)
	a.send(a.srv, appendRRQ(nil, "f", "octet"))
	p, _ := a.mustRecv()
	if p.Op != opDATA {
		t.Fatalf("got %+v", p)
	}
	// A retransmitted RRQ from the same port does not start a second transfer.
	a.send(a.srv, appendRRQ(nil, "f", "octet"))
	if p, _, err := a.recv(200 * time.Millisecond); err == nil {
		t.Fatalf("duplicate RRQ answered with %+v", p)
	}
	b := newRaw(t, ts.addr)
	b.send(b.srv, appendRRQ(nil, "f", "octet"))
	b.expectError(errNotDefined, "busy")
	if got := counter(t, ts.reg, "netbootd_tftp_active_transfers", ""); got != 1 {
		t.Fatalf("active = %v", got)
	}
}

func TestTimeoutGivesUp(t *testing.T) {
	ts := startServer(t, Config{Timeout: 50 * time.Millisecond, Retries: 2})
	ts.AddFile("f", []byte("x"))
	c := newRaw(t, ts.addr)
	c.send(c.srv, appendRRQ(nil, "f", "octet"))
	// The first block plus two retransmissions, then ERROR 0 "timeout".
	for i := 0; i < 3; i++ {
		if p, _ := c.mustRecv(); p.Op != opDATA || p.Block != 1 {
			t.Fatalf("got %+v", p)
		}
	}
	c.expectError(errNotDefined, "timeout")
	waitFor(t, ts.reg, func() bool { return counter(t, ts.reg, "netbootd_tftp_transfers_failed_total", "timeout") == 1 })
	if got := counter(t, ts.reg, "netbootd_tftp_retransmitted_blocks_total", ""); got != 2 {
		t.Errorf("retransmitted = %v, want 2", got)
	}
}

func TestRunStopsTransfers(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s.AddFile("f", []byte("x"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	c := newRaw(t, s.Addr().String())
	c.send(c.srv, appendRRQ(nil, "f", "octet"))
	c.mustRecv() // the transfer now waits 10s for an ACK that never comes
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not stop the transfer")
	}
}

func TestNewErrors(t *testing.T) {
	ts := startServer(t, Config{})
	if _, err := New(Config{Listen: ts.addr}); err == nil {
		t.Error("binding a busy port succeeded")
	}
	if _, err := New(Config{Listen: "127.0.0.1:0", MaxBlockSize: 4}); err == nil {
		t.Error("MaxBlockSize 4 accepted")
	}
	if _, err := New(Config{Listen: "127.0.0.1:0", Root: filepath.Join(t.TempDir(), "nope")}); err == nil {
		t.Error("missing root accepted")
	}
	// Registering twice in the same registry fails cleanly.
	if _, err := New(Config{Listen: "127.0.0.1:0", Registerer: ts.reg}); err == nil {
		t.Error("duplicate metrics registration accepted")
	}
}

// lossyProxy relays UDP between one client and the server, dropping packets with a
// seeded RNG. The client talks to the proxy's port only; the proxy follows the server's
// switch to the transfer port.
type lossyProxy struct {
	front   *net.UDPConn // client side
	back    *net.UDPConn // server side
	server  *net.UDPAddr // listener first, then the transfer TID
	mu      sync.Mutex
	rng     *rand.Rand
	lossPct int
	client  *net.UDPAddr
	dropped int
	relayed int
}

func newLossyProxy(t *testing.T, server string, lossPct int, seed int64) *lossyProxy {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := net.ResolveUDPAddr("udp", server)
	p := &lossyProxy{front: front, back: back, server: sa, rng: rand.New(rand.NewSource(seed)), lossPct: lossPct}
	go p.pump(front, true)
	go p.pump(back, false)
	t.Cleanup(func() { front.Close(); back.Close() })
	return p
}

func (p *lossyProxy) drop() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rng.Intn(100) < p.lossPct {
		p.dropped++
		return true
	}
	p.relayed++
	return false
}

func (p *lossyProxy) pump(in *net.UDPConn, fromClient bool) {
	buf := make([]byte, 70000)
	for {
		n, from, err := in.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		var out *net.UDPConn
		var to *net.UDPAddr
		if fromClient {
			p.client = from
			out, to = p.back, p.server
		} else {
			p.server = from // the server's transfer TID
			out, to = p.front, p.client
		}
		p.mu.Unlock()
		if to == nil || p.drop() {
			continue
		}
		out.WriteToUDP(buf[:n], to)
	}
}

// viaNetpoller sends every download through the netpoller, as those beside another go.
func viaNetpoller(s *Server) { s.maxBlocking = 0 }

func TestLossyTransfer(t *testing.T) {
	t.Run("blocking socket", func(t *testing.T) { testLossyTransfer(t) })
	t.Run("netpoller", func(t *testing.T) { testLossyTransfer(t, viaNetpoller) })
}

func testLossyTransfer(t *testing.T, setup ...func(*Server)) {
	data := randomData(1<<20, 3)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "kernel"), data)
	ts := startServer(t, Config{Root: root}, setup...)
	for i, blk := range []int{0, 1468} {
		proxy := newLossyProxy(t, ts.addr, 3, int64(i+1))
		c := pinClient(t, proxy.front.LocalAddr().String())
		// pin/tftp re-ACKs only on its own timeout (it ignores duplicate DATA), so a lost
		// ACK costs the client's timeout: keep it short.
		c.SetTimeout(50 * time.Millisecond)
		// Many retries: a short timeout must not also mean a short patience, or a test process
		// starved of CPU for a second gives up (make stress-test).
		c.SetRetries(600)
		if blk != 0 {
			c.SetBlockSize(blk)
			c.RequestTSize(true)
		}
		start := time.Now()
		got, _, _, err := pinFetch(c, "kernel", "octet")
		if err != nil {
			proxy.mu.Lock()
			defer proxy.mu.Unlock()
			t.Fatalf("blksize %d: %v (dropped %d)", blk, err, proxy.dropped)
		}
		if sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatalf("blksize %d: content differs", blk)
		}
		proxy.mu.Lock()
		t.Logf("blksize %d: %v, %d packets relayed, %d dropped", blk, time.Since(start), proxy.relayed, proxy.dropped)
		proxy.mu.Unlock()
	}
	if got := counter(t, ts.reg, "netbootd_tftp_retransmitted_blocks_total", ""); got == 0 {
		t.Error("no retransmissions counted at 3% loss")
	}
}

func TestIPv6Loopback(t *testing.T) {
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	probe.Close()
	ts := startServer(t, Config{Listen: "[::1]:0"})
	data := randomData(100_000, 21)
	ts.AddFile("f", data)
	c := pinClient(t, ts.addr)
	c.SetBlockSize(1024)
	got, _, _, err := pinFetch(c, "f", "octet")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}

// A wildcard listener answers from the address the client sent its request to.
func TestWildcardListener(t *testing.T) {
	ts := startServer(t, Config{Listen: "0.0.0.0:0"})
	ts.AddFile("f", []byte("hi"))
	port := ts.Addr().(*net.UDPAddr).Port
	c := newRaw(t, fmt.Sprintf("127.0.0.1:%d", port))
	c.send(c.srv, appendRRQ(nil, "f", "octet"))
	p, from := c.mustRecv()
	if p.Op != opDATA || !from.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("got %+v from %v", p, from)
	}
	c.send(from, appendAck(nil, 1))
	c.send(c.srv, appendRRQ(nil, "missing", "octet"))
	p, from = c.mustRecv()
	if p.Op != opERROR || !from.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("got %+v from %v", p, from)
	}
}

// In single-port mode every packet of a transfer comes from the listening port (what NAT and a
// Kubernetes Service let through), and concurrent transfers are kept apart by client address.
func TestSinglePort(t *testing.T) {
	srv := startServer(t, Config{SinglePort: true})
	data := randomData(3<<20+17, 11)
	srv.AddFile("big.img", data)
	small := randomData(700, 12)
	srv.AddFile("small", small)

	// A raw client: the first DATA must come from the server's own port.
	raddr, _ := net.ResolveUDPAddr("udp", srv.addr)
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteToUDP([]byte("\x00\x01small\x00octet\x00"), raddr); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 600)
	n, from, err := c.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	if from.Port != raddr.Port || n != 4+512 || buf[1] != 3 {
		t.Fatalf("first DATA from port %d (listener %d), %d bytes, opcode %d", from.Port, raddr.Port, n, buf[1])
	}

	// Several pin/tftp clients at once, each from its own port, all intact.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := pinClient(t, srv.addr)
			cl.SetBlockSize(1468)
			wt, err := cl.Receive("big.img", "octet")
			if err != nil {
				t.Error(err)
				return
			}
			var b bytes.Buffer
			if _, err := wt.WriteTo(&b); err != nil {
				t.Error(err)
				return
			}
			if sha256.Sum256(b.Bytes()) != sha256.Sum256(data) {
				t.Errorf("client %d: %d bytes, checksum differs", i, b.Len())
			}
		}()
	}
	wg.Wait()
}

// Write requests land in UploadDir only: new names, within the size limit, never outside it,
// and a failed upload leaves nothing behind.
func TestUploads(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, Config{UploadDir: dir, MaxUpload: 100 << 10})
	send := func(name string, data []byte) error {
		c := pinClient(t, srv.addr)
		c.SetBlockSize(1468)
		rf, err := c.Send(name, "octet")
		if err != nil {
			return err
		}
		_, err = rf.ReadFrom(bytes.NewReader(data))
		return err
	}
	data := randomData(50<<10+3, 21)
	if err := send("report.bin", data); err != nil {
		t.Fatalf("upload: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "report.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("uploaded file: %d bytes, %v", len(got), err)
	}
	if err := send("report.bin", data); err == nil {
		t.Errorf("an existing file was overwritten")
	}
	for _, name := range []string{"../escape.bin", "/../../escape.bin", "a/../../escape.bin"} {
		if err := send(name, []byte("x")); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.bin")); err == nil {
		t.Errorf("a file was written outside the upload directory")
	}
	if err := send("big.bin", randomData(200<<10, 22)); err == nil {
		t.Errorf("an upload over the limit was accepted")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		names := []string{}
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("upload directory holds %v, want only report.bin", names)
	}
}

// Without UploadDir every write is refused with a clear error.
func TestWritesRefusedByDefault(t *testing.T) {
	srv := startServer(t, Config{})
	c := pinClient(t, srv.addr)
	rf, err := c.Send("x", "octet")
	if err == nil {
		_, err = rf.ReadFrom(bytes.NewReader([]byte("data")))
	}
	if err == nil || !strings.Contains(err.Error(), "writes are not supported") {
		t.Errorf("write without an upload directory: %v", err)
	}
}
