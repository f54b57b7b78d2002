//go:build integration

package tests

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// The configuration changes ten times on disk (no signal: netbootd watches the file) while
// perfdhcp runs DORA at a steady rate: no exchange is dropped, each change is applied, and the
// reservation added last is answered by the fast path.
func TestReloadUnderLoad(t *testing.T) {
	r := newXDPRack(t)
	pins := pinDir(t, r)
	// perfdhcp acts as a relay (giaddr = its address 10.10.0.2): trust it on the rack's subnet.
	base := strings.Replace(rackConfig, `pools: ["10.10.0.100-10.10.0.150"]`,
		`pools: ["10.10.0.100-10.10.0.150"]
    relays: [10.10.0.2]`, 1)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", base, "", "--xdp", "generic", "--pin-dir", pins)
	load := r.client(t, "02:00:00:00:0f:01")
	load.Run(t, "ip", "addr", "add", "10.10.0.2/24", "dev", "eth0")

	perf := load.Cmd(t, "perfdhcp", "-4", "-l", "eth0", "-r", "100", "-p", "14", "-R", "40", "-W", "2000000")
	var out strings.Builder
	perf.Stdout, perf.Stderr = &out, &out
	if err := perf.Start(); err != nil {
		t.Fatal(err)
	}
	// The changes come while perfdhcp's exchanges are being answered.
	waitFor(t, "perfdhcp's requests answered", func() bool { return d.metric("netbootd_dhcp_replies_total") > 0 })
	var added []string
	for i := 0; i < 10; i++ {
		added = append(added, fmt.Sprintf("  - {mac: \"02:00:00:00:0e:%02x\", ip: 10.10.0.%d, hostname: new%d}\n", i, 60+i, i))
		before := strings.Count(d.logs(), "configuration reloaded")
		if err := os.WriteFile(d.configPath+".tmp", []byte(base+strings.Join(added, "")), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(d.configPath+".tmp", d.configPath); err != nil { // how config management replaces files
			t.Fatal(err)
		}
		deadline := time.Now().Add(patience)
		for strings.Count(d.logs(), "configuration reloaded") == before {
			if time.Now().After(deadline) {
				t.Fatalf("change %d not applied within %v", i+1, patience)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Second) // pacing, not waiting: the ten changes spread over perfdhcp's run
	}
	if err := perf.Wait(); err != nil {
		t.Fatalf("perfdhcp: %v\n%s", err, out.String())
	}
	sent, recv, drops := perfdhcpStats(out.String())
	if len(sent) != 2 || sent[0] < 1000 {
		t.Fatalf("perfdhcp did not run at its rate: sent %v\n%s", sent, out.String())
	}
	for i := range drops {
		if drops[i] != 0 || recv[i] != sent[i] {
			t.Errorf("exchange %d during reloads: sent %d, received %d, drops %d", i, sent[i], recv[i], drops[i])
		}
	}
	t.Logf("perfdhcp during 10 reloads: sent %v, received %v, drops %v", sent, recv, drops)
	newest := r.client(t, "02:00:00:00:0e:09")
	if ip := udhcpcAnsweredByXDP(t, d, newest, "the reservation added last")["ip"]; ip != "10.10.0.69" {
		t.Errorf("the reservation added last: got %q, want 10.10.0.69", ip)
	}
}
