//go:build integration

package tests

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A renewal of an unchanged lease within dhcp.reuse_threshold (default 25%) is ACKed from the
// lease on disk: no write, and the ACK grants what is left of that lease (less than the lease
// time), never more than the disk holds; a kill -9 right after loses nothing the client was
// told, and after the restart the replayed lease is reused the same way. A new lease still gets
// the full lease time.
func TestDHCPLatReusedRenewalSurvivesKill9(t *testing.T) {
	r := newRack(t)
	state := t.TempDir()
	// An hour's lease: the renewals must come within a quarter of it, even on a starved machine.
	conf := strings.Replace(rackConfig, "lease_time: 10m", "lease_time: 1h", 1)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", conf, state, goPath...)
	const mac = "02:00:00:00:07:01"
	c := r.client(t, mac)
	first := udhcpcOnce(t, c)
	if first["lease"] != "3600" {
		t.Fatalf("new lease granted %q s, want the lease time 3600", first["lease"])
	}
	expires := func(d *daemon) time.Time {
		t.Helper()
		for _, l := range d.leases() {
			if l.MAC == mac && l.State == "bound" {
				e, err := time.Parse(time.RFC3339Nano, l.Expires)
				if err != nil {
					t.Fatalf("lease expiry %q: %v", l.Expires, err)
				}
				return e
			}
		}
		t.Fatalf("no bound lease of %s: %+v", mac, d.leases())
		return time.Time{}
	}
	onDisk := expires(d)

	asked := time.Now()
	again := udhcpcOnce(t, c, "-r", first["ip"])
	granted, err := strconv.Atoi(again["lease"])
	if err != nil || again["ip"] != first["ip"] {
		t.Fatalf("renewal: %v", again)
	}
	if granted >= 3600 || granted < 2700 {
		t.Fatalf("reused lease granted %d s, want what is left of the 3600 s lease (2700-3599)", granted)
	}
	if n := d.metric("netbootd_lease_reused_total"); n < 1 {
		t.Fatalf("netbootd_lease_reused_total = %v after a renewal within the threshold", n)
	}
	if e := expires(d); !e.Equal(onDisk) {
		t.Fatalf("reused lease changed: expires %v, was %v", e, onDisk)
	}
	// The client counts from when it asked: the lease on disk lasts at least that long.
	if promised := asked.Add(time.Duration(granted) * time.Second); onDisk.Before(promised) {
		t.Fatalf("ACK promised until %v, the lease on disk ends %v", promised, onDisk)
	}

	if err := d.stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d2 := startNetbootd(t, r.server, "sv0", "10.10.0.1", conf, state, goPath...)
	if e := expires(d2); !e.Equal(onDisk) {
		t.Fatalf("after kill -9: lease expires %v, want %v as on disk before", e, onDisk)
	}
	third := udhcpcOnce(t, c, "-r", first["ip"])
	if n, err := strconv.Atoi(third["lease"]); err != nil || third["ip"] != first["ip"] || n > granted {
		t.Fatalf("renewal after the restart: %v (before it: %d s granted)", third, granted)
	}
	if n := d2.metric("netbootd_lease_reused_total"); n < 1 {
		t.Fatalf("replayed lease not reused: netbootd_lease_reused_total = %v", n)
	}
}
