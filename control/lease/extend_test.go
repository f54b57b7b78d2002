package lease

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/testclock"
)

// The zeros ahead of the records are written by a background extension, not by a commit:
// while one is held before it writes anything, commits that fit in the space already ahead
// complete and the file does not grow; once it runs, the file is extended ahead of the records.
// A commit too big for the space left waits for the extension and is not overwritten by its
// zeros; every lease is there after a reopen.
func TestLeaseLogExtendOutsideCommit(t *testing.T) {
	const ahead = 4096
	clk := testclock.New(time.Unix(2e9, 0))
	path := filepath.Join(t.TempDir(), "l.db")
	s := open(t, path, clk, "10.0.0.10", "10.0.0.200")
	entered, release := make(chan struct{}), make(chan struct{})
	s.log.ahead = ahead
	// Each extension waits to be let go; once release is closed, none waits.
	s.log.extendStep = func() {
		select {
		case entered <- struct{}{}:
		case <-release:
		}
		<-release
	}

	var ops []leaseOp
	next := func(hostname string) leaseOp {
		op := leaseOp{mac: len(ops) + 1, ip: fmt.Sprintf("10.0.0.%d", 20+len(ops)), hostname: hostname}
		ops = append(ops, op)
		return op
	}
	commit := func(op leaseOp) error {
		_, err := s.Commit(Client{MAC: mac(op.mac)}, subnet, netip.MustParseAddr(op.ip), time.Hour, op.hostname)
		return err
	}
	state := func() (size, alloc int64, growing bool) {
		s.log.mu.Lock()
		defer s.log.mu.Unlock()
		return s.log.size, s.log.alloc, s.log.growing
	}
	fileLen := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	waitExtended := func(to int64) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Millisecond) {
			if _, alloc, growing := state(); !growing && alloc >= to && fileLen() >= to {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("file not extended to %d: %d bytes", to, fileLen())
			}
		}
	}

	// The first commit finds no space ahead: it writes past the end and starts an extension.
	if err := commit(next("first")); err != nil {
		t.Fatal(err)
	}
	<-entered
	size, _, _ := state()
	release <- struct{}{}
	waitExtended(size + ahead)

	// Commit until less than half the space is left: that commit starts the next extension.
	for started := false; !started; {
		if err := commit(next("h")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-entered:
			started = true
		default:
		}
		if len(ops) > 100 {
			t.Fatal("100 commits and no extension started")
		}
	}
	size, alloc, growing := state()
	if !growing || alloc-size < ahead/4 {
		t.Fatalf("extension held: growing %v, %d bytes left ahead", growing, alloc-size)
	}
	// Held before it writes: commits that fit below alloc still complete.
	done := make(chan error, 1)
	during := []leaseOp{next("while-extending"), next("while-extending"), next("while-extending")}
	go func() {
		for _, op := range during {
			if err := commit(op); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("commits waited for the background extension")
	}
	if now, _, _ := state(); now <= size || fileLen() != alloc {
		t.Fatalf("during the extension: records end at %d (were at %d), file %d bytes, want %d", now, size, fileLen(), alloc)
	}
	// A commit bigger than the space left waits for the extension (or follows it: the order is
	// the scheduler's) and is not overwritten by its zeros.
	big := next(strings.Repeat("x", ahead))
	go func() { done <- commit(big) }()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	size, _, _ = state()
	waitExtended(size)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, clk, "10.0.0.10", "10.0.0.200")
	defer s.Close()
	if got, w := have(s), want(ops); got != w {
		t.Fatalf("after reopen:\n%swant\n%s", got, w)
	}
}
