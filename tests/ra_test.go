//go:build integration

package tests

import (
	"strings"
	"testing"
	"time"
)

// With interface.ipv6_ra, a real IPv6 host (rdisc6, from ndisc6) that solicits a router hears
// "no router, no DHCPv6" at once: what ends iPXE's ~14 s wait for IPv6 on a boot network.
func TestRouterSolicitationAnswered(t *testing.T) {
	r := newRack(t)
	c := r.client(t, "02:00:00:00:77:01")
	startNetbootd(t, r.server, "sv0", "10.10.0.1", "interface: {mode: proxy, ipv6_ra: true}\n", "")
	// IPv6 duplicate address detection must finish before link-local addresses are usable.
	deadline := time.Now().Add(patience)
	for {
		out, err := c.Exec("rdisc6", "-1", "-w", "1000", "-r", "3", "eth0")
		if err == nil {
			for _, want := range []string{"Stateful address conf.    :           No", "Stateful other conf.      :           No"} {
				if !strings.Contains(out, want) {
					t.Errorf("RA lacks %q:\n%s", want, out)
				}
			}
			if !strings.Contains(out, "Router lifetime") || !lifetimeZero(out) {
				t.Errorf("RA announces a default router:\n%s", out)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no router advertisement: %v\n%s", err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// lifetimeZero reads rdisc6's "Router lifetime : N (0x...) seconds" line.
func lifetimeZero(out string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "Router lifetime") {
			f := strings.Fields(strings.SplitN(l, ":", 2)[1])
			return len(f) > 0 && f[0] == "0"
		}
	}
	return false
}
