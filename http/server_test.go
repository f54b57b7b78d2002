package http

import (
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/tests/testrun"
)

// startSplit runs a server with both listeners; it returns the boot and the management base URLs.
func startSplit(t *testing.T, cfg Config) (s *Server, boot, mgmt string) {
	t.Helper()
	cfg.Listen, cfg.Management = "127.0.0.1:0", "127.0.0.1:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testrun.Run(t, s.Run)
	return s, "http://" + s.Addr().String(), "http://" + s.ManagementAddr().String()
}

func httpGet(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, err := nethttp.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := nethttp.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The API and the counters answer on the management listener only; boot routes on the boot
// listener only; health on both.
func TestRoutingSplit(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "netbootd_test_things_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	leases := []Lease{{MAC: "02:00:00:00:00:01", IP: "10.0.0.5", State: "bound", Subnet: "10.0.0.0/24"}}
	s, boot, mgmt := startSplit(t, Config{Gatherer: reg, Leases: func() []Lease { return leases }})

	if code, _ := httpGet(t, mgmt+"/readyz"); code != 503 {
		t.Errorf("/readyz before ready = %d, want 503", code)
	}
	s.SetReady(true)
	for _, tt := range []struct {
		path       string
		boot, mgmt int
		mgmtBody   string
	}{
		{"/healthz", 200, 200, "ok"},
		{"/readyz", 200, 200, "ready"},
		{"/api/v1/leases", 404, 200, `"ip":"10.0.0.5"`},
		{"/api/v1/machines", 404, 200, "[]"},
		{"/api/v1/machines/02:00:00:00:00:01", 404, 404, "unknown machine"},
		{"/metrics", 404, 200, "netbootd_test_things_total 3"},
		{"/ipxe/boot.ipxe", 200, 404, ""},
		{"/ipxe/script?mac=02:00:00:00:00:01", 0, 404, ""},
		{"/configs/02:00:00:00:00:01/user-data", 0, 404, ""}, // the boot side is the configs handler's to answer
		{"/booted/02:00:00:00:00:01", 0, 404, ""},
	} {
		if code, body := httpGet(t, boot+tt.path); tt.boot != 0 && code != tt.boot {
			t.Errorf("boot listener %s = %d %q, want %d", tt.path, code, body, tt.boot)
		} else if tt.boot == 0 && code == 404 && strings.HasPrefix(body, "404 page not found") {
			t.Errorf("boot listener %s: no route", tt.path)
		}
		code, body := httpGet(t, mgmt+tt.path)
		if code != tt.mgmt || !strings.Contains(body, tt.mgmtBody) {
			t.Errorf("management listener %s = %d %q, want %d with %q", tt.path, code, body, tt.mgmt, tt.mgmtBody)
		}
	}
}

// With a token, the API answers only requests that carry it; health and metrics stay open.
func TestManagementToken(t *testing.T) {
	const token = "s3cret-token-0123456789"
	_, boot, mgmt := startSplit(t, Config{ManagementToken: token, Gatherer: prometheus.NewRegistry()})
	for _, tt := range []struct {
		name   string
		header []string
		code   int
	}{
		{"no header", nil, 401},
		{"wrong token", []string{"Authorization", "Bearer s3cret-token-0123456788"}, 401},
		{"token prefix", []string{"Authorization", "Bearer s3cret"}, 401},
		{"token without scheme", []string{"Authorization", token}, 401},
		{"basic scheme", []string{"Authorization", "Basic " + token}, 401},
		{"the token", []string{"Authorization", "Bearer " + token}, 200},
	} {
		for _, path := range []string{"/api/v1/leases", "/api/v1/machines"} {
			if code, body := httpGet(t, mgmt+path, tt.header...); code != tt.code {
				t.Errorf("%s: %s = %d %q, want %d", tt.name, path, code, body, tt.code)
			}
		}
	}
	for _, path := range []string{"/metrics", "/healthz"} {
		if code, _ := httpGet(t, mgmt+path); code != 200 {
			t.Errorf("%s without a token = %d, want 200", path, code)
		}
	}
	// The token opens nothing on the boot listener.
	if code, _ := httpGet(t, boot+"/api/v1/machines", "Authorization", "Bearer "+token); code != 404 {
		t.Errorf("boot listener /api/v1/machines with the token = %d, want 404", code)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{Gatherer: prometheus.NewRegistry()}); err == nil {
		t.Error("empty listen address accepted")
	}
	if _, err := New(Config{Listen: "127.0.0.1:0"}); err == nil {
		t.Error("missing gatherer accepted")
	}
	for name, cfg := range map[string]Config{
		"short token":                {Management: "127.0.0.1:0", ManagementToken: "short"},
		"token with a space":         {Management: "127.0.0.1:0", ManagementToken: "0123456789 abcdefgh"},
		"token without a listener":   {ManagementToken: "0123456789abcdefgh"},
		"negative per-client cap":    {MaxDownloadsPerClient: -1},
		"negative stall timeout":     {StallTimeout: -time.Second},
		"management address garbage": {Management: "nope"},
	} {
		cfg.Listen, cfg.Gatherer = "127.0.0.1:0", prometheus.NewRegistry()
		if s, err := New(cfg); err == nil {
			s.closeListeners()
			t.Errorf("%s: accepted", name)
		}
	}
	// A management address already taken is reported, and the boot listener is released.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	boot, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bootAddr := boot.Addr().String()
	boot.Close()
	if _, err := New(Config{Listen: bootAddr, Management: taken.Addr().String(), Gatherer: prometheus.NewRegistry()}); err == nil || !strings.Contains(err.Error(), "management listener") {
		t.Errorf("taken management address: %v", err)
	}
	if ln, err := net.Listen("tcp", bootAddr); err != nil {
		t.Errorf("boot listener not released after the failed start: %v", err)
	} else {
		ln.Close()
	}
}

// Connections get a one-second cap on the retransmission backoff where the kernel has it.
func TestRetransmitBackoffCapped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			defer c.Close()
			time.Sleep(time.Second)
		}
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	capRetransmitBackoff(c)
	raw, _ := c.(*net.TCPConn).SyscallConn()
	var got int
	var gerr error
	_ = raw.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, tcpRTOMaxMS) })
	if errors.Is(gerr, unix.ENOPROTOOPT) {
		t.Logf("kernel without TCP_RTO_MAX_MS: backoff stays the kernel's default")
		return
	}
	if gerr != nil || got != 1000 {
		t.Errorf("TCP_RTO_MAX_MS = %d (%v), want 1000", got, gerr)
	}
}
