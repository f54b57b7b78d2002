//go:build integration

package lease

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/tests/testclock"
)

// A full disk (a real one: a small tmpfs): a commit that cannot be written fails (the DHCP
// server sends no ACK for it) and leaves nothing of itself in memory or in the file; commits
// written before are all there at the next start, and once there is room again, commits work.
func TestLeaseLogFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: mounts a tmpfs")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	path := filepath.Join(dir, "leases.db")
	clk := testclock.New(time.Unix(2e9, 0))
	pools := []Pool{{Subnet: subnet, Ranges: []Range{{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.254")}}}}
	s, err := Open(Config{Path: path, Pools: pools, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	// Fill the rest of the disk, keeping the filler to free later.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 512)
	for {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	filler.Close()
	// Commit until the disk refuses (the file's last page may still have room for a few).
	var bound []Lease
	var failed Client
	for i := 0; ; i++ {
		if i == 200 {
			t.Fatal("200 commits on a full disk: none failed")
		}
		c := Client{MAC: mac(i)}
		ip, err := s.Offer(c, subnet, netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := s.Commit(c, subnet, ip, time.Hour, fmt.Sprint("h", i))
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("commit on a full disk: %v, want ENOSPC", err)
			}
			failed = c
			break
		}
		bound = append(bound, l)
	}
	if l, ok := s.Lookup(failed.MAC, subnet); ok && l.State == Bound {
		t.Fatalf("failed commit bound in memory: %+v", l)
	}
	// Room again: commits work, the failed client can try again.
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	ip, err := s.Offer(failed, subnet, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Commit(failed, subnet, ip, time.Hour, "retried")
	if err != nil {
		t.Fatalf("commit after space came back: %v", err)
	}
	bound = append(bound, l)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".torn"); err == nil {
		t.Error("the failed write left a torn record in the log")
	}
	all, err := ReadAll(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(bound) {
		t.Fatalf("%d leases after reopen, %d committed", len(all), len(bound))
	}
	for i, l := range all {
		if l.IP != bound[i].IP || l.MAC.String() != bound[i].MAC.String() || l.Hostname != bound[i].Hostname {
			t.Errorf("lease %d after reopen: %+v, committed %+v", i, l, bound[i])
		}
	}
}
