//go:build integration

package tests

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/netns"
)

// downloadAttackConfig is rackConfig with assets and one profile for every machine, so a reserved
// machine's script names a kernel and an initrd.
const downloadAttackConfig = rackConfig + `http: {assets: %s}
profiles:
  - {name: os, kernel: vmlinuz, initrds: [initrd.gz], args: "console=ttyS0"}
groups:
  - {name: all, profile: os}
`

// attackAssets writes a kernel and an initrd (4 MiB and 1 MiB of random bytes) and a 1 GiB
// sparse image, more than any socket buffers hold, for a flood of downloads nobody reads.
func attackAssets(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, size := range map[string]int64{"vmlinuz": 4 << 20, "initrd.gz": 1 << 20} {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		rnd, err := os.Open("/dev/urandom")
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.CopyN(f, rnd, size)
		rnd.Close()
		if cerr := f.Close(); err != nil || cerr != nil {
			t.Fatal(err, cerr)
		}
	}
	f, err := os.Create(filepath.Join(dir, "big.img"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	return dir
}

// curlCode runs curl in ns and returns the HTTP status ("000" when no answer) and curl's exit code.
func curlStatus(ns *netns.NS, args ...string) (string, int) {
	out, err := ns.Exec("curl", append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30"}, args...)...)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return strings.TrimSpace(out), ee.ExitCode()
	}
	return strings.TrimSpace(out), 0
}

// A host on the boot network cannot list machines or leases, nor read the counters: the boot
// address answers 404 for them and nothing listens on the management port there. On the server
// itself the management listener answers, and `netbootd machines` and `netbootd leases` use it
// without being told where it is.
func TestAttackManagementNotOnBootNetwork(t *testing.T) {
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(downloadAttackConfig, attackAssets(t)), "", goPath...)
	legit := r.client(t, "02:00:00:00:00:0a")
	if got := udhcpcOnce(t, legit); got["ip"] != "10.10.0.10" {
		t.Fatalf("reserved client got %v", got)
	}
	attacker := r.onLink(t, "02:00:00:00:0e:01", "10.10.0.250/24")

	// The attack: every management path, on the boot address and on the management port of
	// every address the server has on the boot network.
	for _, path := range []string{"/api/v1/machines", "/api/v1/leases", "/api/v1/machines/02:00:00:00:00:0a", "/metrics"} {
		if code, _ := curlStatus(attacker, "http://"+d.httpAddr+path); code != "404" {
			t.Errorf("attacker: GET http://%s%s = %s, want 404", d.httpAddr, path, code)
		}
		u := "http://10.10.0.1:9180" + path
		if code, exit := curlStatus(attacker, u); code != "000" || exit != 7 {
			t.Errorf("attacker: GET %s = %s (curl exit %d), want connection refused (exit 7)", u, code, exit)
		}
	}
	// Boot routes stay anonymous for the legitimate client.
	if code, _ := curlStatus(legit, "http://"+d.httpAddr+"/assets/vmlinuz"); code != "200" {
		t.Errorf("legitimate client: GET /assets/vmlinuz = %s, want 200", code)
	}

	// The operator, on the server: the management listener answers, the CLI finds it by default.
	if code, _ := curlStatus(r.server, "http://"+defaultMgmtAddr+"/metrics"); code != "200" {
		t.Errorf("server: GET /metrics on %s = %s, want 200", defaultMgmtAddr, code)
	}
	bin := netbootdBin(t)
	out, err := r.server.Exec(bin, "machines")
	if err != nil || !strings.Contains(out, "02:00:00:00:00:0a") || !strings.Contains(out, "10.10.0.10") {
		t.Errorf("netbootd machines: %v\n%s", err, out)
	}
	out, err = r.server.Exec(bin, "machines", "02:00:00:00:00:0a")
	if err != nil || !strings.Contains(out, "+TIME") {
		t.Errorf("netbootd machines MAC: %v\n%s", err, out)
	}
	out, err = r.server.Exec(bin, "leases")
	if err != nil || !strings.Contains(out, "10.10.0.10") || !strings.Contains(out, "02:00:00:00:00:0a") {
		t.Errorf("netbootd leases: %v\n%s", err, out)
	}
	// From the attacker's namespace the CLI finds nothing: its loopback is its own.
	if out, err := attacker.Exec(bin, "machines", "--server", "10.10.0.1:9180"); err == nil {
		t.Errorf("netbootd machines from the boot network answered:\n%s", out)
	}
}

// With a management token, the API answers only the operator who has it: the CLI sends it from
// --token-file or $NETBOOTD_MGMT_TOKEN, and says what is missing without it.
func TestAttackManagementToken(t *testing.T) {
	r := newRack(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	const token = "kqP3v9Zt0xS8wQ2mL5nB7cR4"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", "--xdp", "off", "--mgmt-token-file", tokenFile)
	if got := udhcpcOnce(t, r.client(t, "02:00:00:00:00:0a")); got["ip"] != "10.10.0.10" {
		t.Fatalf("reserved client got %v", got)
	}
	api := "http://" + d.mgmtAddr + "/api/v1/leases"
	for _, h := range []string{"", "Authorization: Bearer wrong-token-0123456789", "Authorization: Bearer " + token[:10]} {
		args := []string{api}
		if h != "" {
			args = append(args, "-H", h)
		}
		if code, _ := curlStatus(r.server, args...); code != "401" {
			t.Errorf("GET %s with %q = %s, want 401", api, h, code)
		}
	}
	if code, _ := curlStatus(r.server, api, "-H", "Authorization: Bearer "+token); code != "200" {
		t.Errorf("GET %s with the token = %s, want 200", api, code)
	}
	// Prometheus and the probes need no token.
	if code, _ := curlStatus(r.server, "http://"+d.mgmtAddr+"/metrics"); code != "200" {
		t.Errorf("GET /metrics without a token = %s, want 200", code)
	}

	bin := netbootdBin(t)
	if out, err := r.server.Exec(bin, "machines"); err == nil || !strings.Contains(out, "management token") {
		t.Errorf("netbootd machines without the token: %v, want an error naming the token\n%s", err, out)
	}
	if out, err := r.server.Exec(bin, "leases", "--token-file", tokenFile); err != nil || !strings.Contains(out, "10.10.0.10") {
		t.Errorf("netbootd leases --token-file: %v\n%s", err, out)
	}
	cmd := r.server.Cmd(t, bin, "machines")
	cmd.Env = append(os.Environ(), "NETBOOTD_MGMT_TOKEN="+token)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "02:00:00:00:00:0a") {
		t.Errorf("NETBOOTD_MGMT_TOKEN=... netbootd machines: %v\n%s", err, out)
	}
}

// latencies summarises one client's fetches.
type latencies struct {
	ok, total int
	times     []time.Duration
}

func (l *latencies) String() string {
	return latencySummary(l.times, l.total, time.Millisecond)
}

// fetch GETs url with curl in ns and records whether it came whole (status 200, want bytes).
func (l *latencies) fetch(t *testing.T, ns *netns.NS, url string, want int64) {
	t.Helper()
	l.total++
	out, err := ns.Exec("curl", "-s", "-o", "/dev/null", "--max-time", "120", "-w", "%{http_code} %{size_download} %{time_total}", url)
	var code string
	var size int64
	var secs float64
	if _, serr := fmt.Sscan(out, &code, &size, &secs); serr != nil || err != nil || code != "200" || (want >= 0 && size != want) {
		t.Logf("GET %s: %v: %q", url, err, out)
		return
	}
	l.ok++
	l.times = append(l.times, time.Duration(secs*float64(time.Second)))
}

// Downloads cannot be blocked by one host: an attacker opens 520 downloads of a 1 GiB image
// and never reads them, and 100 more connections that never finish their request. A reserved
// machine in another namespace still gets its script, kernel and initrd every time; the
// attacker holds its few slots until the stall deadline cuts them.
//
// The figures (success rate, median and max latency, without and during the flood) are in the
// test log: make build && NETBOOTD_BIN=$PWD/bin/netbootd go test -tags integration -count=1 -v -run TestAttackIdleHTTPConnections ./tests/
func TestAttackIdleHTTPConnections(t *testing.T) {
	r := newRack(t)
	assets := attackAssets(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(downloadAttackConfig, assets), "", goPath...)
	mac := "02:00:00:00:00:0a"
	legit := r.client(t, mac)
	if got := udhcpcOnce(t, legit); got["ip"] != "10.10.0.10" {
		t.Fatalf("reserved client got %v", got)
	}
	attacker := r.onLink(t, "02:00:00:00:0e:01", "10.10.0.250/24")
	base := "http://" + d.httpAddr
	kernelSize, initrdSize := int64(4<<20), int64(1<<20)
	// What iPXE fetches: its script, then the kernel and the initrd.
	files := []struct {
		name, url string
		size      int64
	}{
		{"script", base + "/ipxe/script?mac=" + mac, -1},
		{"kernel (4 MiB)", base + "/assets/vmlinuz", kernelSize},
		{"initrd (1 MiB)", base + "/assets/initrd.gz", initrdSize},
	}
	const rounds = 20
	boot := func() []*latencies {
		ls := []*latencies{{}, {}, {}}
		for range rounds {
			for i, f := range files {
				ls[i].fetch(t, legit, f.url, f.size)
			}
		}
		return ls
	}
	before := boot()
	for i, l := range before {
		if l.ok != l.total {
			t.Fatalf("before the flood the legitimate client already failed: %s: %s", files[i].name, l)
		}
	}

	// The flood, from the attacker's namespace.
	const readers, idle = 520, 100
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	err := attacker.Do(t, func() error {
		dialer := net.Dialer{Timeout: 30 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
			// A small window: the server's writes stall after a few KiB.
			return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		}}
		for i := range readers + idle {
			c, err := dialer.Dial("tcp", d.httpAddr)
			if err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
			conns = append(conns, c)
			req := "GET /assets/big.img HTTP/1.1\r\nHost: " + d.httpAddr + "\r\n\r\n"
			if i >= readers {
				req = "GET /assets/big.img HTTP/1.1\r\nHost: " // never finished
			}
			if _, err := io.WriteString(c, req); err != nil {
				return fmt.Errorf("connection %d: %w", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("attacker: %v", err)
	}
	// The flood took hold: every non-reading download beyond the attacker's share was refused.
	const perClient = 4 // nbhttp.DefaultMaxDownloadsPerClient
	waitUntil(t, "the attacker's downloads to be answered", 2*time.Minute, func() bool {
		return d.metric("netbootd_http_downloads_refused_total", `reason="client"`) >= readers-perClient
	})

	start := time.Now()
	during := boot()
	t.Logf("legitimate client (curl from another namespace, %d rounds), without and during the flood of %d non-reading downloads + %d unfinished requests (%s):",
		rounds, readers, idle, time.Since(start).Round(time.Second))
	for i, f := range files {
		t.Logf("  %-15s no flood: %-40s flood: %s", f.name, before[i], during[i])
		if during[i].ok != during[i].total {
			t.Errorf("during the flood the legitimate client failed: %s: %s", f.name, during[i])
		}
	}
	t.Logf("  measured by: make build && NETBOOTD_BIN=$PWD/bin/netbootd go test -tags integration -count=1 -v -run TestAttackIdleHTTPConnections ./tests/")
	if refused := d.metric("netbootd_http_downloads_refused_total", `reason="total"`); refused != 0 {
		t.Errorf("%v downloads refused because every slot was busy: the attacker held more than its share", refused)
	}
	// The stall deadline frees the attacker's slots: its downloads are cut, not kept forever.
	// The deadline is 30 s (nbhttp.DefaultStallTimeout); the wait is generous for a loaded machine.
	waitUntil(t, "the attacker's stalled downloads to be cut", 3*time.Minute, func() bool {
		return d.metric("netbootd_http_downloads_stalled_total") >= float64(perClient)
	})
	if !strings.Contains(d.logs(), "download stalled") {
		t.Errorf("no log line for the stalled downloads")
	}
	t.Logf("stalled downloads cut: %v; downloads refused to the attacker: %v",
		d.metric("netbootd_http_downloads_stalled_total"), d.metric("netbootd_http_downloads_refused_total", `reason="client"`))
}
