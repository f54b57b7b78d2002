package lease

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/netbootd/netbootd/tests/testclock"
)

const subnet = "10.0.0.0/24"

func mac(i int) net.HardwareAddr { return net.HardwareAddr{2, 0, 0, 0, byte(i >> 8), byte(i)} }

func open(t *testing.T, path string, clk *testclock.Clock, first, last string) *Store {
	t.Helper()
	s, err := Open(Config{
		Path:     path,
		Pools:    []Pool{{Subnet: subnet, Ranges: []Range{{netip.MustParseAddr(first), netip.MustParseAddr(last)}}}},
		Reserved: map[netip.Addr]string{netip.MustParseAddr("10.0.0.12"): "02:00:00:00:ff:ff"},
		Now:      clk.Now, OfferHold: 30 * time.Second, DeclineHold: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOfferCommitAndExhaustion(t *testing.T) {
	clk := testclock.New(time.Unix(1e9, 0))
	s := open(t, filepath.Join(t.TempDir(), "l.db"), clk, "10.0.0.10", "10.0.0.13")
	defer s.Close()
	seen := map[netip.Addr]bool{}
	for i := 0; i < 3; i++ { // 4 addresses, one reserved for someone else
		ip, err := s.Offer(Client{MAC: mac(i)}, subnet, netip.Addr{})
		if err != nil {
			t.Fatalf("offer %d: %v", i, err)
		}
		if seen[ip] || ip.String() == "10.0.0.12" {
			t.Fatalf("offer %d: %s given twice or reserved", i, ip)
		}
		seen[ip] = true
	}
	if _, err := s.Offer(Client{MAC: mac(9)}, subnet, netip.Addr{}); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("full pool: %v", err)
	}
	// Offers lapse after the hold time and the addresses come back.
	clk.Add(31 * time.Second)
	if _, err := s.Offer(Client{MAC: mac(9)}, subnet, netip.Addr{}); err != nil {
		t.Fatalf("after offers lapsed: %v", err)
	}
}

func TestCommitRules(t *testing.T) {
	clk := testclock.New(time.Unix(1e9, 0))
	s := open(t, filepath.Join(t.TempDir(), "l.db"), clk, "10.0.0.10", "10.0.0.20")
	defer s.Close()
	a := netip.MustParseAddr("10.0.0.15")
	if _, err := s.Commit(Client{MAC: mac(1)}, subnet, a, time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(Client{MAC: mac(2)}, subnet, a, time.Hour, ""); !errors.Is(err, ErrNotAvailable) {
		t.Errorf("another MAC took a bound address: %v", err)
	}
	if _, err := s.Commit(Client{MAC: mac(2)}, subnet, netip.MustParseAddr("10.0.0.12"), time.Hour, ""); !errors.Is(err, ErrNotAvailable) {
		t.Errorf("another MAC took a reserved address: %v", err)
	}
	if _, err := s.Commit(Client{MAC: mac(2)}, subnet, netip.MustParseAddr("10.0.0.50"), time.Hour, ""); !errors.Is(err, ErrNotAvailable) {
		t.Errorf("address outside the pools committed: %v", err)
	}
	if _, err := s.Commit(Client{MAC: net.HardwareAddr{2, 0, 0, 0, 0xff, 0xff}}, subnet, netip.MustParseAddr("10.0.0.12"), time.Hour, "r"); err != nil {
		t.Errorf("owner of a reservation: %v", err)
	}
	// The lease expires; then the address is free for another client.
	clk.Add(2 * time.Hour)
	if _, err := s.Commit(Client{MAC: mac(2)}, subnet, a, time.Hour, ""); err != nil {
		t.Errorf("expired address not reusable: %v", err)
	}
}

func TestLeasesSurviveReopen(t *testing.T) {
	clk := testclock.New(time.Now())
	path := filepath.Join(t.TempDir(), "l.db")
	s := open(t, path, clk, "10.0.0.10", "10.0.0.200")
	want := map[string]netip.Addr{}
	for i := 0; i < 20; i++ {
		ip, err := s.Offer(Client{MAC: mac(i)}, subnet, netip.Addr{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Commit(Client{MAC: mac(i)}, subnet, ip, time.Hour, fmt.Sprint("h", i)); err != nil {
			t.Fatal(err)
		}
		want[mac(i).String()] = ip
	}
	if _, err := ReadAll(path); !errors.Is(err, ErrLocked) {
		t.Errorf("ReadAll while open: %v, want ErrLocked", err)
	}
	s.Close()
	all, err := ReadAll(path)
	if err != nil || len(all) != 20 {
		t.Fatalf("ReadAll: %d leases, %v", len(all), err)
	}
	s = open(t, path, clk, "10.0.0.10", "10.0.0.200")
	defer s.Close()
	for i := 0; i < 20; i++ {
		l, ok := s.Lookup(mac(i), subnet)
		if !ok || l.IP != want[mac(i).String()] || l.State != Bound || l.Hostname != fmt.Sprint("h", i) {
			t.Errorf("client %d after reopen: %+v", i, l)
		}
		// and its next DISCOVER gets the same address
		if ip, _ := s.Offer(Client{MAC: mac(i)}, subnet, netip.Addr{}); ip != want[mac(i).String()] {
			t.Errorf("client %d offered %s, had %s", i, ip, want[mac(i).String()])
		}
	}
	// A new client never gets an address that is bound to another.
	ip, err := s.Offer(Client{MAC: mac(100)}, subnet, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	for m, a := range want {
		if a == ip {
			t.Errorf("new client offered %s, bound to %s", ip, m)
		}
	}
}

// Many clients at once: every address goes to exactly one MAC (run with -race).
func TestConcurrentClientsNeverShareAnAddress(t *testing.T) {
	clk := testclock.New(time.Now())
	s := open(t, filepath.Join(t.TempDir(), "l.db"), clk, "10.0.0.10", "10.0.0.250")
	defer s.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	owner := map[netip.Addr]string{}
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip, err := s.Offer(Client{MAC: mac(i)}, subnet, netip.Addr{})
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := s.Commit(Client{MAC: mac(i)}, subnet, ip, time.Hour, ""); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if o, dup := owner[ip]; dup {
				t.Errorf("%s bound to %s and %s", ip, o, mac(i))
			}
			owner[ip] = mac(i).String()
		}()
	}
	wg.Wait()
}

func TestReleaseAndDecline(t *testing.T) {
	clk := testclock.New(time.Now())
	s := open(t, filepath.Join(t.TempDir(), "l.db"), clk, "10.0.0.10", "10.0.0.11")
	defer s.Close()
	a, _ := s.Offer(Client{MAC: mac(1)}, subnet, netip.Addr{})
	s.Commit(Client{MAC: mac(1)}, subnet, a, time.Hour, "")
	if err := s.Release(Client{MAC: mac(2)}, a); !errors.Is(err, ErrNotAvailable) {
		t.Errorf("a stranger released a lease: %v", err)
	}
	if err := s.Decline(Client{MAC: mac(1)}, a); err != nil {
		t.Fatal(err)
	}
	b, _ := s.Offer(Client{MAC: mac(2)}, subnet, netip.Addr{})
	if b == a {
		t.Fatalf("declined address %s offered", a)
	}
	s.Commit(Client{MAC: mac(2)}, subnet, b, time.Hour, "")
	if _, err := s.Offer(Client{MAC: mac(3)}, subnet, netip.Addr{}); !errors.Is(err, ErrPoolExhausted) {
		t.Errorf("declined address not held: %v", err)
	}
	clk.Add(2 * time.Minute)
	if ip, err := s.Offer(Client{MAC: mac(3)}, subnet, netip.Addr{}); err != nil || ip != a {
		t.Errorf("after the decline hold: %s %v", ip, err)
	}
}

// A damaged record does not stop the store: its address stays out of the pool.
func TestDamagedRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		b, _ := tx.CreateBucketIfNotExists(bucket)
		return b.Put([]byte{10, 0, 0, 10}, []byte("{not json"))
	})
	db.Close()
	s := open(t, path, testclock.New(time.Now()), "10.0.0.10", "10.0.0.11")
	defer s.Close()
	if ip, err := s.Offer(Client{MAC: mac(1)}, subnet, netip.Addr{}); err != nil || ip.String() != "10.0.0.11" {
		t.Errorf("offer beside a damaged record: %s %v", ip, err)
	}
}

// Two instances with complementary shares of one pool (HA, one leader after the other) never
// hand out the same address, each renews only its own, and each runs dry at its half.
func TestSharesNeverOverlap(t *testing.T) {
	clk := testclock.New(time.Unix(1e9, 0))
	dir := t.TempDir()
	a := open(t, filepath.Join(dir, "a.db"), clk, "10.0.0.20", "10.0.0.29")
	b := open(t, filepath.Join(dir, "b.db"), clk, "10.0.0.20", "10.0.0.29")
	defer a.Close()
	defer b.Close()
	if err := a.SetShare(0, 2); err != nil {
		t.Fatal(err)
	}
	if err := b.SetShare(1, 2); err != nil {
		t.Fatal(err)
	}
	if err := b.SetShare(2, 2); err == nil {
		t.Fatal("share 2 of 2 accepted")
	}
	owner := map[netip.Addr]string{}
	for i, s := range []*Store{a, b} {
		for c := 0; c < 5; c++ {
			m := mac(100*i + c)
			// Ask for an address of the other half: the store must not give it.
			ip, err := s.Offer(Client{MAC: m}, subnet, netip.MustParseAddr(fmt.Sprintf("10.0.0.%d", 21-i)))
			if err != nil {
				t.Fatalf("instance %d client %d: %v", i, c, err)
			}
			if _, err := s.Commit(Client{MAC: m}, subnet, ip, time.Hour, ""); err != nil {
				t.Fatalf("instance %d commit %s: %v", i, ip, err)
			}
			if prev, dup := owner[ip]; dup {
				t.Fatalf("%s handed out twice: %s and %s", ip, prev, m)
			}
			owner[ip] = m.String()
			if (ip.As4()[3]-20)%2 != byte(i) {
				t.Fatalf("instance %d gave %s, outside its share", i, ip)
			}
		}
		if _, err := s.Offer(Client{MAC: mac(100*i + 9)}, subnet, netip.Addr{}); !errors.Is(err, ErrPoolExhausted) {
			t.Fatalf("instance %d: sixth client got %v, want its half exhausted", i, err)
		}
	}
	// b renews nothing of a's: the client keeps its lease from a, and a stays the only one to renew it.
	for ip, m := range owner {
		hw, _ := net.ParseMAC(m)
		mine, other := a, b
		if (ip.As4()[3]-20)%2 == 1 {
			mine, other = b, a
		}
		if _, err := other.Commit(Client{MAC: hw}, subnet, ip, time.Hour, ""); !errors.Is(err, ErrOtherShare) {
			t.Fatalf("renewal of %s by the other instance: %v, want ErrOtherShare", ip, err)
		}
		if _, err := mine.Commit(Client{MAC: hw}, subnet, ip, time.Hour, ""); err != nil {
			t.Fatalf("renewal of %s by its owner: %v", ip, err)
		}
	}
}

// Writes to one address reach the file in the order they changed the index, whatever batches
// they fall into: after racing renewals, the file says what memory said.
func TestRacingWritesLandInIndexOrder(t *testing.T) {
	clk := testclock.New(time.Unix(1e9, 0))
	path := filepath.Join(t.TempDir(), "l.db")
	s := open(t, path, clk, "10.0.0.10", "10.0.0.13")
	ip := netip.MustParseAddr("10.0.0.10")
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Commit(Client{MAC: mac(1)}, subnet, ip, time.Hour, fmt.Sprintf("h%d", i)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	inMemory, _ := s.Lookup(mac(1), subnet)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, clk, "10.0.0.10", "10.0.0.13")
	defer s.Close()
	onDisk, _ := s.Lookup(mac(1), subnet)
	if onDisk.Hostname != inMemory.Hostname {
		t.Fatalf("file has %q, memory had %q", onDisk.Hostname, inMemory.Hostname)
	}
}
