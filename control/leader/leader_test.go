package leader

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// store is one record in memory, with the API server's optimistic concurrency: an update must
// carry the version its writer last read.
type store struct {
	mu      sync.Mutex
	rec     *Record
	version int
}

// client is one instance's Lock on the store; cut makes every call fail (a partitioned node).
type client struct {
	s    *store
	seen int
	cut  atomic.Bool
}

var errCut = errors.New("partitioned")

func (c *client) Get(context.Context) (Record, error) {
	if c.cut.Load() {
		return Record{}, errCut
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.rec == nil {
		return Record{}, ErrNotFound
	}
	c.seen = c.s.version
	return *c.s.rec, nil
}

func (c *client) Create(_ context.Context, r Record) error {
	if c.cut.Load() {
		return errCut
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.rec != nil {
		return errors.New("already exists")
	}
	c.s.rec, c.s.version = &r, c.s.version+1
	return nil
}

func (c *client) Update(_ context.Context, r Record) error {
	if c.cut.Load() {
		return errCut
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.rec == nil || c.seen != c.s.version {
		return errors.New("conflict")
	}
	c.s.rec, c.s.version = &r, c.s.version+1
	return nil
}

func (c *client) Describe() string { return "test/pools" }

func (s *store) record() Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil {
		return Record{}
	}
	return *s.rec
}

// instance is one campaigning Elector and whether it leads now.
type instance struct {
	lock    *client
	leading atomic.Bool
	stop    context.CancelFunc
	done    chan struct{}
}

func campaign(t *testing.T, s *store, id string) *instance {
	t.Helper()
	in := &instance{lock: &client{s: s}, done: make(chan struct{})}
	e, err := New(Config{Lock: in.lock, Identity: id, LeaseDuration: time.Second, OnChange: in.leading.Store})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in.stop = cancel
	go func() {
		defer close(in.done)
		if err := e.Run(ctx); err != nil {
			t.Errorf("%s: Run: %v", id, err)
		}
	}()
	t.Cleanup(func() { cancel(); <-in.done })
	return in
}

// waitFor polls cond, generously: the machine may be starved.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	if _, err := New(Config{Identity: "a", OnChange: func(bool) {}}); err == nil {
		t.Error("no lock: want an error")
	}
	if _, err := New(Config{Lock: &client{s: &store{}}, OnChange: func(bool) {}}); err == nil {
		t.Error("no identity: want an error")
	}
}

// TestStandbyTakesOverAReleasedLease: one of two instances leads; when it stops it releases the
// record and the other takes over, counting a transition.
func TestStandbyTakesOverAReleasedLease(t *testing.T) {
	s := &store{}
	a := campaign(t, s, "a")
	waitFor(t, "a to lead", a.leading.Load)
	b := campaign(t, s, "b")
	if r := s.record(); r.Holder != "a" || r.Transitions != 0 {
		t.Fatalf("record %+v: want held by a, no transition", r)
	}
	a.stop()
	<-a.done
	if a.leading.Load() {
		t.Error("a still leads after it stopped")
	}
	waitFor(t, "b to lead", b.leading.Load)
	if r := s.record(); r.Holder != "b" || r.Transitions != 1 {
		t.Errorf("record %+v: want held by b after one transition", r)
	}
}

// TestSilentLeaderStepsDown: a leader that can no longer reach the lock stops owning the pools,
// and the standby takes the record over once it expires.
func TestSilentLeaderStepsDown(t *testing.T) {
	s := &store{}
	a := campaign(t, s, "a")
	waitFor(t, "a to lead", a.leading.Load)
	b := campaign(t, s, "b")
	a.lock.cut.Store(true)
	waitFor(t, "a to step down", func() bool { return !a.leading.Load() })
	waitFor(t, "b to lead", b.leading.Load)
	if r := s.record(); r.Holder != "b" || r.Transitions != 1 {
		t.Errorf("record %+v: want held by b after one transition", r)
	}
}
