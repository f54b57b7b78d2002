package lease

import (
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/netbootd/netbootd/tests/testclock"
)

func openReuse(t *testing.T, path string, clk *testclock.Clock, threshold float64) *Store {
	t.Helper()
	s, err := Open(Config{
		Path:  path,
		Pools: []Pool{{Subnet: subnet, Ranges: []Range{{netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("10.0.0.20")}}}},
		Now:   clk.Now, ReuseThreshold: threshold,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func logSize(s *Store) int64 {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return s.log.size
}

// A renewal of an unchanged binding within the threshold writes nothing and returns the lease
// as it is on disk (its expiry, not a new one); past the threshold, or with a changed host
// name, the renewal is written. With threshold 0 every renewal is written.
func TestLeaseReuseWithinThreshold(t *testing.T) {
	clk := testclock.New(time.Unix(2e9, 0))
	path := filepath.Join(t.TempDir(), "l.db")
	s := openReuse(t, path, clk, 0.25)
	c, ip := Client{MAC: mac(1)}, netip.MustParseAddr("10.0.0.15")
	commit := func(host string) Lease {
		t.Helper()
		l, err := s.Commit(c, subnet, ip, time.Hour, host)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	first := commit("a")
	written := logSize(s)

	clk.Add(14 * time.Minute)
	if l := commit("a"); !l.Expires.Equal(first.Expires) || logSize(s) != written {
		t.Fatalf("renewal 14 min into a 1 h lease: expires %v (on disk %v), log %d bytes (was %d)", l.Expires, first.Expires, logSize(s), written)
	}
	if n := testutil.ToFloat64(s.reused); n != 1 {
		t.Fatalf("reused counter %v, want 1", n)
	}

	clk.Add(2 * time.Minute) // 16 min: past a quarter of the lease time
	l := commit("a")
	if want := clk.Now().Add(time.Hour); !l.Expires.Equal(want) || logSize(s) <= written {
		t.Fatalf("renewal past the threshold: expires %v, want %v; log %d bytes (was %d)", l.Expires, want, logSize(s), written)
	}
	written = logSize(s)
	clk.Add(time.Minute)
	if l := commit("b"); !l.Expires.Equal(clk.Now().Add(time.Hour)) || l.Hostname != "b" || logSize(s) <= written {
		t.Fatalf("changed host name reused the old lease: %+v", l)
	}
	written = logSize(s)
	// Another client asking for the address gets no reuse (nor the address).
	if _, err := s.Commit(Client{MAC: mac(2)}, subnet, ip, time.Hour, "b"); err == nil || logSize(s) != written {
		t.Fatalf("another client's commit: %v, log %d (was %d)", err, logSize(s), written)
	}

	// After a restart the replayed lease is on disk: it is reused.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openReuse(t, path, clk, 0.25)
	written = logSize(s)
	clk.Add(time.Minute)
	if l := commit("b"); l.Expires.Equal(clk.Now().Add(time.Hour)) || logSize(s) != written {
		t.Fatalf("replayed lease not reused: %+v, log %d (was %d)", l, logSize(s), written)
	}

	// Threshold 0: every renewal is written.
	if err := s.SetReuseThreshold(0); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	if l := commit("b"); !l.Expires.Equal(clk.Now().Add(time.Hour)) || logSize(s) <= written {
		t.Fatalf("threshold 0 reused: %+v", l)
	}
	for _, bad := range []float64{-0.1, 1, 2} {
		if s.SetReuseThreshold(bad) == nil {
			t.Errorf("threshold %v accepted", bad)
		}
	}
	s.Close()
}

// A lease indexed but not yet on disk is never reused: while a commit that changed the binding
// waits for its flush, a renewal of the binding as it was before (which is on disk, but no
// longer the address's lease) writes its own record and returns only once that is on disk.
func TestLeaseReuseNeverOfUnflushed(t *testing.T) {
	clk := testclock.New(time.Unix(2e9, 0))
	path := filepath.Join(t.TempDir(), "l.db")
	s := openReuse(t, path, clk, 0.25)
	defer s.Close()
	c, ip := Client{MAC: mac(1)}, netip.MustParseAddr("10.0.0.15")
	if _, err := s.Commit(c, subnet, ip, time.Hour, "a"); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	s.log.mu.Lock() // holds every flush
	changed := make(chan error, 1)
	go func() {
		_, err := s.Commit(c, subnet, ip, time.Hour, "b")
		changed <- err
	}()
	for indexed := false; !indexed; {
		s.mu.Lock()
		indexed = s.byIP[ip].Hostname == "b"
		s.mu.Unlock()
		if !indexed {
			time.Sleep(time.Millisecond)
		}
	}
	type result struct {
		l   Lease
		err error
	}
	back := make(chan result, 1)
	go func() {
		l, err := s.Commit(c, subnet, ip, time.Hour, "a")
		back <- result{l, err}
	}()
	// The renewal queues its record behind the held flush: it cannot have been answered.
	for queued := false; !queued; {
		s.commits.mu.Lock()
		queued = len(s.commits.pending) > 0 && s.commits.busy
		s.commits.mu.Unlock()
		select {
		case r := <-back:
			t.Fatalf("renewal answered while the address's lease was not on disk: %+v, %v", r.l, r.err)
		default:
		}
		if !queued {
			time.Sleep(time.Millisecond)
		}
	}
	s.log.mu.Unlock()
	if err := <-changed; err != nil {
		t.Fatal(err)
	}
	r := <-back
	if r.err != nil || r.l.Hostname != "a" || !r.l.Expires.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("renewal: %+v, %v; want a new lease for host a", r.l, r.err)
	}
	if l, ok := s.Lookup(mac(1), subnet); !ok || l.Hostname != "a" {
		t.Fatalf("index: %+v", l)
	}
}

// CommitIfDurable answers without waiting what needs no write: a renewal that reuses the lease
// on disk (as Commit would) and a refusal; a commit that must write returns ErrMustWait and
// changes nothing (no record, no binding, the client's offer kept).
func TestCommitIfDurableNeverWrites(t *testing.T) {
	clk := testclock.New(time.Unix(2e9, 0))
	s := openReuse(t, filepath.Join(t.TempDir(), "l.db"), clk, 0.25)
	c := Client{MAC: mac(1)}
	offered, err := s.Offer(c, subnet, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	empty := logSize(s)
	if _, err := s.CommitIfDurable(c, subnet, offered, time.Hour, "a"); !errors.Is(err, ErrMustWait) {
		t.Fatalf("first commit of an offer: %v, want ErrMustWait", err)
	}
	if l, ok := s.Find(c, subnet); logSize(s) != empty || !ok || l.State != Offered || l.IP != offered {
		t.Fatalf("after ErrMustWait: log %d bytes (was %d), lease %+v %v: want the offer untouched", logSize(s), empty, l, ok)
	}

	first, err := s.Commit(c, subnet, offered, time.Hour, "a")
	if err != nil {
		t.Fatal(err)
	}
	written := logSize(s)
	clk.Add(10 * time.Minute)
	l, err := s.CommitIfDurable(c, subnet, offered, time.Hour, "a")
	if err != nil || !l.Expires.Equal(first.Expires) || logSize(s) != written {
		t.Fatalf("renewal within the threshold: %+v, %v, log %d bytes (was %d): want the lease on disk, reused", l, err, logSize(s), written)
	}
	if _, err := s.CommitIfDurable(Client{MAC: mac(2)}, subnet, offered, time.Hour, "b"); !errors.Is(err, ErrNotAvailable) {
		t.Fatalf("another client's commit: %v, want ErrNotAvailable", err)
	}
	if _, err := s.CommitIfDurable(c, subnet, offered, time.Hour, "renamed"); !errors.Is(err, ErrMustWait) || logSize(s) != written {
		t.Fatalf("changed host name: %v, log %d bytes (was %d): want ErrMustWait and no write", err, logSize(s), written)
	}
	clk.Add(10 * time.Minute) // 20 min: past a quarter of the lease time
	if _, err := s.CommitIfDurable(c, subnet, offered, time.Hour, "a"); !errors.Is(err, ErrMustWait) || logSize(s) != written {
		t.Fatalf("renewal past the threshold: %v, log %d bytes (was %d): want ErrMustWait and no write", err, logSize(s), written)
	}
	if l, ok := s.Find(c, subnet); !ok || !l.Expires.Equal(first.Expires) || l.Hostname != "a" {
		t.Fatalf("binding after the refused commits: %+v %v, want the one on disk", l, ok)
	}
}
