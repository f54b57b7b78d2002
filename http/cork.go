package http

import (
	"net"
	nethttp "net/http"

	"golang.org/x/sys/unix"
)

// cork holds back the partial segments of a download on a plain TCP connection until uncork
// (TCP_CORK, as nginx's tcp_nopush): the headers go out with the first bytes of the file, and
// each sendfile chunk, instead of ending in a short segment of its own, leaves its tail to the
// next one. uncork sends what is held at once; the caller runs it however the download ends, so
// that neither the tail of a file nor the next response on the connection waits.
func cork(r *nethttp.Request) (uncork func()) {
	c, ok := r.Context().Value(connKey{}).(net.Conn)
	if !ok || r.TLS != nil {
		return func() {}
	}
	tc, ok := c.(*net.TCPConn)
	if !ok || setCork(tc, true) != nil {
		return func() {}
	}
	return func() { _ = setCork(tc, false) }
}

func setCork(tc *net.TCPConn, on bool) error {
	rc, err := tc.SyscallConn()
	if err != nil {
		return err
	}
	v := 0
	if on {
		v = 1
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK, v) }); err != nil {
		return err
	}
	return serr
}

// corked says whether tc holds its partial segments back (for tests).
func corked(tc *net.TCPConn) (bool, error) {
	rc, err := tc.SyscallConn()
	if err != nil {
		return false, err
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) { v, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_CORK) }); err != nil {
		return false, err
	}
	return v != 0, serr
}
