//go:build integration

package tests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A full disk under the lease log (the state directory on a small tmpfs): a client whose lease
// cannot be written gets no ACK, the daemon keeps running and counts the error; once there is
// room the same client is served, and after a kill -9 every acknowledged lease is still there.
func TestLeaseLogFullDiskNoAck(t *testing.T) {
	state := t.TempDir()
	if err := unix.Mount("tmpfs", state, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(state, unix.MNT_DETACH) })
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, state, goPath...)
	first := udhcpcOnce(t, r.client(t, "02:00:00:00:0d:01"))["ip"]

	// Fill what is left of the disk.
	f, err := os.Create(filepath.Join(state, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for chunk := make([]byte, 4096); ; {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	// Each lease record is some 200 bytes: what space the file system had left in the log's last
	// block is soon used, then a client's lease cannot be written: no ACK.
	var refused string
	for i := 2; refused == "" && i < 40; i++ {
		mac := fmt.Sprintf("02:00:00:00:0d:%02x", i)
		c := r.client(t, mac)
		out, err := c.Exec("busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "2", "-T", "1", "-A", "1",
			"-s", writeScript(t, udhcpcScript))
		if boundFields(out) == nil {
			if err == nil {
				t.Fatalf("udhcpc without a lease exited 0:\n%s", out)
			}
			refused = mac
			if err := os.Remove(filepath.Join(state, "filler")); err != nil {
				t.Fatal(err)
			}
			// Room again: the same client is served.
			if got := udhcpcOnce(t, c)["ip"]; got == "" {
				t.Fatal("no address once the disk had room")
			}
		}
	}
	if refused == "" {
		t.Fatal("40 clients bound on a full disk: no write failed")
	}
	if n := d.metric("netbootd_dhcp_drops_total", `reason="lease_store_error"`); n < 1 {
		t.Errorf("lease store errors not counted as drops: %v", n)
	}
	if n := d.metric("netbootd_lease_commit_errors_total"); n < 1 {
		t.Errorf("netbootd_lease_commit_errors_total = %v", n)
	}
	want := map[string]string{}
	for _, l := range d.leases() {
		if l.State == "bound" {
			want[l.MAC] = l.IP
		}
	}
	if want["02:00:00:00:0d:01"] != first || want[refused] == "" {
		t.Fatalf("leases before the kill: %v (first client had %s)", want, first)
	}
	if err := d.stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	d2 := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, state, goPath...)
	expectBoundLeases(t, d2, want)
	if _, err := os.Stat(filepath.Join(state, "leases.db.torn")); err == nil {
		t.Error("the failed writes left a torn record in the log")
	} else if !strings.Contains(err.Error(), "no such file") {
		t.Error(err)
	}
}
