//go:build integration

package tests

import (
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A DHCP starvation flood (100,000 DISCOVERs, each from a new random MAC, at 10,000/s) does not
// starve the machines netbootd knows: while it runs, a reserved client is answered by XDP and a
// client with a lease by the control plane. The fast path drops the flood beyond the rate for
// unknown MACs, so the control plane's queue never overflows.
func TestStarvationFlood(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "dhcpgen")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/netbootd/netbootd/tests/dhcpgen").CombinedOutput(); err != nil {
		t.Fatalf("build dhcpgen: %v\n%s", err, out)
	}
	r := newXDPRack(t)
	pins := pinDir(t, r)
	cfg := rackConfig + "dhcp: {offer_hold: 10s, storm: {unknown_rate: 500, per_source_rate: 50}}\n"
	cfg = strings.Replace(cfg, "dhcp: {offer_hold: 10s, decline_hold: 1m}\n", "", 1)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", cfg, "", "--xdp", "generic", "--pin-dir", pins)
	reserved := r.client(t, "02:00:00:00:00:0a")
	known := r.client(t, "02:00:00:00:d1:01")
	flooder := r.client(t, "02:00:00:00:f1:00")

	first := udhcpcOnce(t, known)["ip"]
	// The known-MAC map is synced every 2 s: the client with a lease must be in it.
	waitFor(t, "the leased client's MAC in the fast path's known set", func() bool { return d.metric("netbootd_xdp_known_macs") >= 1 })

	flood := flooder.Cmd(t, bin, "-i", "eth0", "-random", "100000", "-n", "100000", "-pps", "10000", "-t", "30s")
	var out strings.Builder
	flood.Stdout, flood.Stderr = &out, &out
	start := time.Now()
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the flood dropped by the fast path", func() bool {
		return d.metric("netbootd_xdp_packets_total", `result="drop_stranger_rate"`) > 0
	})
	if ip := udhcpcAnsweredByXDP(t, d, reserved, "the reserved client")["ip"]; ip != "10.10.0.10" {
		t.Errorf("reserved client during the flood got %q, want 10.10.0.10", ip)
	}
	if ip := udhcpcOnce(t, known)["ip"]; ip != first {
		t.Errorf("client with a lease during the flood got %q, want its address %s", ip, first)
	}
	answeredDuring := time.Since(start)
	if err := flood.Wait(); err != nil {
		t.Fatalf("dhcpgen: %v\n%s", err, out.String())
	}
	if took := time.Since(start); answeredDuring >= took {
		t.Errorf("the flood (%v) ended before the clients were answered (%v): not a test under load", took, answeredDuring)
	}
	t.Logf("%s; clients answered %v into it", strings.TrimSpace(out.String()), answeredDuring.Round(time.Millisecond))
	dropped := d.metric("netbootd_xdp_packets_total", `result="drop_stranger_rate"`) + d.metric("netbootd_xdp_packets_total", `result="drop_source_rate"`)
	passed := d.metric("netbootd_xdp_packets_total", `result="pass_unknown_mac"`)
	t.Logf("fast path: %v strangers dropped, %v passed to the control plane", dropped, passed)
	if dropped < 50000 {
		t.Errorf("only %v of 100,000 flood frames dropped in XDP", dropped)
	}
	if q := d.metric("netbootd_dhcp_drops_total", `reason="queue_full"`); q != 0 {
		t.Errorf("the control plane's queue overflowed %v times", q)
	}
	if err := d.cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("netbootd died under the flood: %v", err)
	}
}
