package http

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// certCheckInterval bounds how often a handshake looks at the certificate files: a renewed
// certificate is served within this long.
const certCheckInterval = time.Second

// certFiles serves the certificate and key from two PEM files and reloads them when either
// changes (size or modification time), so a renewal needs no restart. A pair that fails to
// load keeps the last good one in use, and the failure is logged once per change.
type certFiles struct {
	certPath, keyPath string
	log               *slog.Logger

	mu        sync.Mutex
	cert      *tls.Certificate
	stamp     string // size and mtime of both files when cert was loaded (or last failed)
	checkedAt time.Time
}

// newCertFiles loads the pair once: a bad pair at start is an error, not a listener that fails
// every handshake.
func newCertFiles(certPath, keyPath string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certPath: certPath, keyPath: keyPath, log: log}
	stamp, err := c.fileStamp()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("http: TLS certificate %s and key %s: %w", certPath, keyPath, err)
	}
	c.cert, c.stamp, c.checkedAt = &cert, stamp, time.Now()
	return c, nil
}

func (c *certFiles) fileStamp() (string, error) {
	var s string
	for _, p := range []string{c.certPath, c.keyPath} {
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("http: TLS: %w", err)
		}
		s += fmt.Sprintf("%d/%d ", st.Size(), st.ModTime().UnixNano())
	}
	return s, nil
}

// get is tls.Config.GetCertificate.
func (c *certFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checkedAt) >= certCheckInterval {
		c.checkedAt = now
		c.reload()
	}
	return c.cert, nil
}

// reload loads the pair again if the files changed since the last attempt.
func (c *certFiles) reload() {
	stamp, err := c.fileStamp()
	if err != nil || stamp == c.stamp {
		return // a file being replaced is missing for a moment: keep serving the old pair
	}
	c.stamp = stamp
	cert, err := tls.LoadX509KeyPair(c.certPath, c.keyPath)
	if err != nil {
		c.log.Warn("TLS certificate changed but does not load: still serving the previous one", "file", c.certPath, "err", err)
		return
	}
	c.cert = &cert
	c.log.Info("TLS certificate reloaded", "file", c.certPath)
}

// tlsConfig is the boot listener's TLS: TLS 1.2 at least, and besides Go's default suites the
// RSA key exchange ones, which are all that UEFI firmware built with an OpenSSL without
// elliptic curves (EDK2's CryptoPkg before 2023, as in Debian 12's OVMF) can offer.
func (c *certFiles) tlsConfig() *tls.Config {
	suites := []uint16{}
	for _, s := range tls.CipherSuites() {
		suites = append(suites, s.ID)
	}
	suites = append(suites, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_256_CBC_SHA)
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.get, CipherSuites: suites}
}

// tcpConn is the TCP connection under c, which may be a TLS connection.
func tcpConn(c net.Conn) (*net.TCPConn, bool) {
	if t, ok := c.(*tls.Conn); ok {
		c = t.NetConn()
	}
	tc, ok := c.(*net.TCPConn)
	return tc, ok
}
