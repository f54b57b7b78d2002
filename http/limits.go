package http

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	nethttp "net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"
)

// Download limits: a host that opens downloads and never reads them must not keep them from
// anyone else. Each address holds a few slots at most, and a download whose writes stop
// progressing loses its connection.
const (
	DefaultMaxDownloads = 512
	// DefaultMaxDownloadsPerClient: iPXE, UEFI HTTP boot and installers fetch one file at a
	// time; a few more cover a retry while the old connection is still being torn down.
	DefaultMaxDownloadsPerClient = 4
	// DefaultStallTimeout is how long a download may go without sending anything before its
	// connection is closed: a slow link still moves a chunk in that time, a host that never
	// reads does not.
	DefaultStallTimeout = 30 * time.Second
	// stallChunk is how much a download sends between two deadline extensions: small enough
	// that "no progress" is noticed, large enough that sendfile keeps its speed.
	stallChunk = 256 << 10
)

// Why a download was refused (the metric's reason label).
const (
	refusedTotal  = "total"
	refusedClient = "client"
)

// slots counts downloads in progress, in total and per client address.
type slots struct {
	max, perClient int
	mu             sync.Mutex
	inUse          int
	byClient       map[netip.Addr]int // only addresses with a download in progress
}

func newSlots(max, perClient int) *slots {
	return &slots{max: max, perClient: perClient, byClient: map[netip.Addr]int{}}
}

// acquire takes a slot for client; ok false says why not (refusedTotal or refusedClient).
// The caller calls release once for each slot it got.
func (s *slots) acquire(client netip.Addr) (reason string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byClient[client] >= s.perClient {
		return refusedClient, false
	}
	if s.inUse >= s.max {
		return refusedTotal, false
	}
	s.inUse++
	s.byClient[client]++
	return "", true
}

func (s *slots) release(client netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inUse--
	if s.byClient[client]--; s.byClient[client] <= 0 {
		delete(s.byClient, client) // the map holds at most max addresses
	}
}

// stallWriter gives every write of a download a deadline of its own, extended as bytes go out,
// instead of one deadline for the whole response: a large image over a slow link finishes, a
// connection that takes nothing for the stall timeout is closed.
type stallWriter struct {
	*recorder
	rc      *nethttp.ResponseController
	timeout time.Duration
	stalled bool // a write hit its deadline
}

func newStallWriter(w *recorder, timeout time.Duration) *stallWriter {
	return &stallWriter{recorder: w, rc: nethttp.NewResponseController(w), timeout: timeout}
}

func (w *stallWriter) extend() {
	// Fails only if the connection has no deadlines (never for TCP); the server's WriteTimeout stays then.
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
}

func (w *stallWriter) note(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		w.stalled = true
	}
}

func (w *stallWriter) Write(b []byte) (int, error) {
	w.extend()
	n, err := w.recorder.Write(b)
	w.note(err)
	return n, err
}

// ReadFrom sends src in chunks with a fresh deadline each. ServeContent hands it an
// io.LimitedReader over the *os.File; each chunk is again a LimitedReader over the file
// itself, the one shape sendfile takes.
func (w *stallWriter) ReadFrom(src io.Reader) (int64, error) {
	remain := int64(1<<63 - 1)
	if lr, ok := src.(*io.LimitedReader); ok {
		src, remain = lr.R, lr.N
	}
	var total int64
	for remain > 0 {
		w.extend()
		n, err := w.recorder.ReadFrom(&io.LimitedReader{R: src, N: min(remain, stallChunk)})
		total += n
		remain -= n
		if err != nil {
			w.note(err)
			return total, err
		}
		if n < min(remain+n, stallChunk) {
			return total, nil // the source ended
		}
	}
	return total, nil
}

// downloadSlot takes a download slot for the request's client, or answers 503 with
// Retry-After (iPXE honours it) and returns ok false.
func (s *Server) downloadSlot(w *recorder, r *nethttp.Request) (release func(), ok bool) {
	client := remoteIP(r)
	reason, ok := s.downloads.acquire(client)
	if !ok {
		s.metrics.refused.WithLabelValues(reason).Inc()
		// Spread the retries.
		w.Header().Set("Retry-After", strconv.Itoa(1+rand.IntN(5)))
		msg := "too many downloads, retry later"
		if reason == refusedClient {
			msg = "too many downloads from your address, retry later"
		}
		nethttp.Error(w, msg, nethttp.StatusServiceUnavailable)
		return nil, false
	}
	return func() { s.downloads.release(client) }, true
}

// sendContent is ServeContent with the stall deadline; a stalled download is counted and logged.
func (s *Server) sendContent(w *recorder, r *nethttp.Request, st fs.FileInfo, f *os.File, log *slog.Logger) {
	sw := newStallWriter(w, s.cfg.StallTimeout)
	defer cork(r)() // uncorked however the download ends
	nethttp.ServeContent(sw, r, st.Name(), st.ModTime(), f)
	if sw.stalled {
		resetOnClose(r)
		s.metrics.stalled.Inc()
		log.Info("download stalled: connection closed", "after_bytes", w.bytes, "stall_timeout", s.cfg.StallTimeout)
	}
}

type connKey struct{}

// withConn puts the connection in its requests' context (http.Server.ConnContext), for resetOnClose.
func withConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// resetOnClose makes the server's close of r's connection a reset: the data queued for a client
// that stopped reading is dropped at once, instead of an orphaned socket holding it (megabytes
// each) while the kernel probes a zero window.
func resetOnClose(r *nethttp.Request) {
	if c, ok := r.Context().Value(connKey{}).(net.Conn); ok {
		if tc, ok := tcpConn(c); ok {
			_ = tc.SetLinger(0)
		}
	}
}
