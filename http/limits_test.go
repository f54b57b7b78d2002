package http

import (
	"bufio"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSlots(t *testing.T) {
	a, b, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	s := newSlots(3, 2)
	steps := []struct {
		addr    netip.Addr
		release bool
		want    string // "" taken, else the refusal
	}{
		{a, false, ""},
		{a, false, ""},
		{a, false, refusedClient}, // a holds its share
		{b, false, ""},
		{c, false, refusedTotal}, // every slot busy
		{a, true, ""},
		{c, false, ""}, // a's released slot goes to c
		{a, false, refusedTotal},
		{a, true, ""},
		{b, true, ""},
		{c, true, ""},
	}
	for i, st := range steps {
		if st.release {
			s.release(st.addr)
			continue
		}
		reason, ok := s.acquire(st.addr)
		if ok != (st.want == "") || reason != st.want {
			t.Errorf("step %d: acquire(%s) = %q %v, want %q", i, st.addr, reason, ok, st.want)
		}
	}
	if s.inUse != 0 || len(s.byClient) != 0 {
		t.Errorf("after releasing everything: %d in use, %d addresses kept", s.inUse, len(s.byClient))
	}
}

func TestDownloadLimit(t *testing.T) {
	e := startServer(t, Config{MaxDownloads: 2})
	others := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}
	for _, a := range others {
		if _, ok := e.s.downloads.acquire(a); !ok {
			t.Fatal("cannot take a slot")
		}
	}
	for _, p := range []string{"/assets/debian/vmlinuz", "/ipxe/ipxe.efi"} {
		r := e.get(t, p)
		if r.code != 503 || r.header.Get("Retry-After") == "" {
			t.Errorf("%s at the limit: %d, Retry-After %q", p, r.code, r.header.Get("Retry-After"))
		}
	}
	if r := e.leased("52:54:00:00:00:01", "127.0.0.1").get(t, "/ipxe/script?mac=52:54:00:00:00:01"); r.code != 200 {
		t.Errorf("scripts are not downloads: %d", r.code)
	}
	e.s.downloads.release(others[0])
	if r := e.get(t, "/assets/debian/vmlinuz"); r.code != 200 {
		t.Errorf("below the limit: %d", r.code)
	}
	if got := testutil.ToFloat64(e.s.metrics.refused.WithLabelValues(refusedTotal)); got != 2 {
		t.Errorf("refused (total) = %v, want 2", got)
	}
}

// bigAsset adds a sparse file to the assets, larger than any socket buffers: a client that does
// not read it stalls the server's writes.
func bigAsset(t *testing.T, e *testEnv) string {
	t.Helper()
	f, err := os.Create(filepath.Join(e.assets, "big.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	return "/assets/big.img"
}

// stalledGet asks for path from local address from and never reads the answer.
func stalledGet(t *testing.T, e *testEnv, from, path string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", e.s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A small receive buffer, so the server's writes stall soon.
	_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitFor polls cond for up to a minute: generous, for a loaded machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (s *slots) held(a netip.Addr) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byClient[a]
}

// One address that opens downloads and never reads holds its share of the slots, not more:
// another address still downloads, and the greedy one is told why it waits.
func TestPerClientLimit(t *testing.T) {
	e := startServer(t, Config{MaxDownloadsPerClient: 2})
	big := bigAsset(t, e)
	greedy := netip.MustParseAddr("127.0.0.1")
	for range 2 {
		stalledGet(t, e, greedy.String(), big)
	}
	waitFor(t, "the greedy address to hold its 2 slots", func() bool { return e.s.downloads.held(greedy) == 2 })

	r := e.get(t, "/assets/debian/vmlinuz") // from 127.0.0.1 too
	if r.code != 503 || !strings.Contains(r.body, "from your address") || r.header.Get("Retry-After") == "" {
		t.Errorf("third download from the greedy address: %d %q, Retry-After %q", r.code, r.body, r.header.Get("Retry-After"))
	}
	other := &nethttp.Client{Transport: &nethttp.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	resp, err := other.Get(e.base + "/assets/debian/vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != kernelBody {
		t.Errorf("download from another address: %d %q", resp.StatusCode, b)
	}
	if got := testutil.ToFloat64(e.s.metrics.refused.WithLabelValues(refusedClient)); got != 1 {
		t.Errorf("refused (client) = %v, want 1", got)
	}
}

// A download whose client takes nothing for the stall timeout loses its connection and its slot.
func TestStalledDownloadClosed(t *testing.T) {
	e := startServer(t, Config{StallTimeout: 300 * time.Millisecond})
	big := bigAsset(t, e)
	c := stalledGet(t, e, "127.0.0.1", big)
	waitFor(t, "the stalled download to be counted", func() bool { return testutil.ToFloat64(e.s.metrics.stalled) == 1 })
	waitFor(t, "the stalled download's slot to be released", func() bool { return e.s.downloads.held(netip.MustParseAddr("127.0.0.1")) == 0 })

	// The server reset the connection: reading fails before the end, and before the deadline.
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	resp, err := nethttp.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) || n >= resp.ContentLength {
		t.Errorf("stalled download: read %d of %d bytes, err %v; want a cut connection", n, resp.ContentLength, err)
	}
}

// deadlineWriter is a connection's ResponseWriter as sendfile sees it: ReadFrom, and write
// deadlines for http.ResponseController.
type deadlineWriter struct {
	headerOnly
	deadlines int
	chunks    []int64
	files     int // chunks that were a LimitedReader over the *os.File itself
}

func (w *deadlineWriter) SetWriteDeadline(time.Time) error { w.deadlines++; return nil }

func (w *deadlineWriter) ReadFrom(src io.Reader) (int64, error) {
	if lr, ok := src.(*io.LimitedReader); ok {
		if _, ok := lr.R.(*os.File); ok {
			w.files++
		}
	}
	n, err := io.Copy(io.Discard, src)
	w.chunks = append(w.chunks, n)
	return n, err
}

// The stall deadline is renewed before every chunk, and each chunk keeps the shape sendfile
// takes; a range (a LimitedReader shorter than the file) is respected.
func TestStallWriterChunks(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, 4*stallChunk+10), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		limit int64
		want  []int64
	}{
		{4*stallChunk + 10, []int64{stallChunk, stallChunk, stallChunk, stallChunk, 10}},
		{stallChunk + 1, []int64{stallChunk, 1}},
		{1 << 40, []int64{stallChunk, stallChunk, stallChunk, stallChunk, 10}}, // the file ends first
	} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		dw := &deadlineWriter{headerOnly: *newHeaderOnly()}
		sw := newStallWriter(&recorder{ResponseWriter: dw}, time.Second)
		n, err := sw.ReadFrom(&io.LimitedReader{R: f, N: tt.limit})
		f.Close()
		var sum int64
		for _, c := range tt.want {
			sum += c
		}
		if err != nil || n != sum || !slices.Equal(dw.chunks, tt.want) || dw.files != len(tt.want) || dw.deadlines != len(tt.want) {
			t.Errorf("limit %d: sent %d (%v), chunks %v (%d over the file), %d deadlines; want %v, each over the file with a deadline",
				tt.limit, n, err, dw.chunks, dw.files, dw.deadlines, tt.want)
		}
		if sw.stalled {
			t.Errorf("limit %d: stalled without a deadline error", tt.limit)
		}
	}
}
