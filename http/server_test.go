package http

import (
	"context"
	"errors"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "netbootd_test_things_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	leases := []Lease{{MAC: "02:00:00:00:00:01", IP: "10.0.0.5", State: "bound", Subnet: "10.0.0.0/24"}}
	s, err := New(Config{Listen: "127.0.0.1:0"}, Deps{Gatherer: reg, Leases: func() []Lease { return leases }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	base := "http://" + s.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := nethttp.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("/readyz before ready = %d, want 503", code)
	}
	s.SetReady(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz after ready = %d", code)
	}
	if code, body := get("/api/v1/leases"); code != 200 || !strings.Contains(body, `"ip":"10.0.0.5"`) || !strings.Contains(body, `"state":"bound"`) {
		t.Errorf("/api/v1/leases = %d %q", code, body)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, "netbootd_test_things_total 3") {
		t.Errorf("/metrics = %d %q", code, body)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{}, Deps{Gatherer: prometheus.NewRegistry()}); err == nil {
		t.Error("empty listen address accepted")
	}
	if _, err := New(Config{Listen: "127.0.0.1:0"}, Deps{}); err == nil {
		t.Error("missing gatherer accepted")
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
