package http

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"testing"
)

// corkProbe is a response writer that notes, at each body write, whether the connection holds
// its partial segments back.
type corkProbe struct {
	headerOnly
	conn   *net.TCPConn
	writes int
	corked int
}

func (w *corkProbe) Write(b []byte) (int, error) {
	w.writes++
	if on, err := corked(w.conn); err == nil && on {
		w.corked++
	}
	return len(b), nil
}

// A download over plain TCP is sent corked (the partial segments of its chunks held back, as
// nginx's tcp_nopush does) and the connection is uncorked when it ends, so the file's tail and
// the next response on the connection go out at once; over TLS the connection is left alone.
func TestDownloadCorkedUntilDone(t *testing.T) {
	e := startServer(t, Config{})
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, 3*stallChunk), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	srv := c.(*net.TCPConn)

	for _, overTLS := range []bool{false, true} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		req, _ := nethttp.NewRequestWithContext(withConn(context.Background(), srv), "GET", "/assets/f", nil)
		if overTLS {
			req.TLS = &tls.ConnectionState{}
		}
		w := &corkProbe{headerOnly: *newHeaderOnly(), conn: srv}
		e.s.sendContent(&recorder{ResponseWriter: w}, req, st, f, slog.New(slog.DiscardHandler))
		f.Close()
		after, err := corked(srv)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case w.writes == 0:
			t.Errorf("TLS %v: no body written", overTLS)
		case !overTLS && w.corked != w.writes:
			t.Errorf("plain TCP: corked during %d of %d writes, want all", w.corked, w.writes)
		case overTLS && w.corked != 0:
			t.Errorf("TLS: corked during %d writes, want none", w.corked)
		case after:
			t.Errorf("TLS %v: still corked after the download", overTLS)
		}
	}
}
