package http

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// testCA signs server certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "netbootd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a server certificate with serial and its RSA key (what UEFI firmware handles)
// as PEM files.
func (ca *testCA) issue(t *testing.T, serial int64, certPath, keyPath string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, certPath, "CERTIFICATE", der)
	writePEM(t, keyPath, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
}

// writePEM replaces path by rename, as certificate tools do.
func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// servedSerial fetches /ipxe/boot.ipxe over HTTPS trusting only ca and returns the serial of the
// certificate the server presented and the body.
func servedSerial(t *testing.T, ca *testCA, addr string) (int64, string) {
	t.Helper()
	c := &nethttp.Client{Transport: &nethttp.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + "/ipxe/boot.ipxe")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET over HTTPS: %d %s", resp.StatusCode, b)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), string(b)
}

// The boot routes answer over HTTPS with the configured certificate; a renewed certificate is
// served without a restart; a broken one is refused and the last good one stays in use; a bad
// pair at start is an error.
func TestHTTPBootTLSListenerReloads(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca := newTestCA(t)
	ca.issue(t, 100, certPath, keyPath)

	logs := &lockedLog{}
	s, err := New(Config{Listen: "127.0.0.1:0", TLSListen: "127.0.0.1:0", TLSCert: certPath, TLSKey: keyPath,
		Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	addr := s.TLSAddr().String()
	serial, body := servedSerial(t, ca, addr)
	if serial != 100 || !strings.HasPrefix(body, "#!ipxe") {
		t.Fatalf("first certificate: serial %d, body %q", serial, body)
	}
	// Plain HTTP on the boot listener still works.
	if code, _ := httpGet(t, "http://"+s.Addr().String()+"/ipxe/boot.ipxe"); code != 200 {
		t.Errorf("plain HTTP: %d", code)
	}

	ca.issue(t, 200, certPath, keyPath)
	waitFor(t, "the renewed certificate", func() bool { s, _ := servedSerial(t, ca, addr); return s == 200 })

	// A broken certificate file: handshakes keep the last good pair.
	if err := os.WriteFile(certPath, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refused reload", func() bool {
		if serial, _ := servedSerial(t, ca, addr); serial != 200 {
			t.Fatalf("after a broken certificate file: serial %d, want the last good one (200)", serial)
		}
		return strings.Contains(logs.String(), "does not load")
	})
	if serial, _ := servedSerial(t, ca, addr); serial != 200 {
		t.Fatalf("after the refused reload: serial %d, want the last good one (200)", serial)
	}

	_, err = New(Config{Listen: "127.0.0.1:0", TLSListen: "127.0.0.1:0", TLSCert: certPath, TLSKey: keyPath, Gatherer: prometheus.NewRegistry()})
	if err == nil || !strings.Contains(err.Error(), "tls.crt") {
		t.Errorf("New with a broken certificate: %v, want an error naming it", err)
	}
}

type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
