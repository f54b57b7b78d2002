// Package lease keeps DHCP leases: an in-memory index that allocates addresses fast, backed by an
// append-only lease log (log.go) that every ACK waits for. Concurrent commits share one write
// and fdatasync (group commit, commit.go), so durability costs one sequential disk flush per
// burst, not one per client.
package lease

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// State is where a lease is in its life.
type State uint8

const (
	Offered State = iota + 1
	Bound
	Released
	Declined
	Expired
)

func (s State) String() string {
	switch s {
	case Offered:
		return "offered"
	case Bound:
		return "bound"
	case Released:
		return "released"
	case Declined:
		return "declined"
	case Expired:
		return "expired"
	}
	return "unknown"
}

// Lease binds an address to a client until Expires.
type Lease struct {
	MAC      net.HardwareAddr `json:"mac"`
	ClientID []byte           `json:"client_id,omitempty"` // option 61 (Client); absent in files written before it was kept
	IP       netip.Addr       `json:"ip"`
	State    State            `json:"state"`
	Subnet   string           `json:"subnet"`
	Hostname string           `json:"hostname,omitempty"`
	Expires  time.Time        `json:"expires"`
}

// Errors callers decide on.
var (
	ErrPoolExhausted = errors.New("pool exhausted")
	ErrNotAvailable  = errors.New("address belongs to another client or is outside the pools")
	ErrLocked        = errors.New("lease store is locked by another process (is another netbootd running?)")
	// ErrOtherShare: the address is in a pool, but in another instance's share of it (SetShare).
	ErrOtherShare = errors.New("address is in another instance's share of the pool")
	// ErrMustWait: CommitIfDurable found that the commit has to write and wait for the disk.
	ErrMustWait = errors.New("lease commit must wait for the disk")
)

// Pool is the dynamic ranges of one subnet.
type Pool struct {
	Subnet string // the subnet's CIDR, as configured
	Ranges []Range
}

// Range is an inclusive IPv4 range.
type Range struct{ First, Last netip.Addr }

// Config is what Open needs.
type Config struct {
	Path        string
	Pools       []Pool
	Reserved    map[netip.Addr]string // reserved address → MAC (string form): never allocated to others
	OfferHold   time.Duration
	DeclineHold time.Duration
	// ReuseThreshold, between 0 and 1, lets a renewal reuse the client's lease already on disk
	// instead of writing a new one, while less than this fraction of the lease time has passed
	// since it was written (Kea's cache-threshold, ISC dhcpd's dhcp-cache-threshold): the ACK
	// then grants what is left of that lease, so it promises nothing the disk does not hold, and
	// costs no write. 0: every renewal is written.
	ReuseThreshold float64
	Logger         *slog.Logger
	Registerer     prometheus.Registerer
	Now            func() time.Time // for tests
}

// Store is the lease database. Its methods are safe for concurrent use.
type Store struct {
	cfg Config
	log *leaseLog

	mu       sync.Mutex
	byIP     map[netip.Addr]*Lease
	byMAC    map[string]*Lease // the MAC's latest lease; key: macKey
	byID     map[string]*Lease // leases of clients with an identifier; key: idKey
	pools    map[string]*pool
	reserved map[netip.Addr]string
	share    share
	// durable is, per address, the lease whose record is on disk (its commit returned, or the
	// log replayed it): only that one may be reused. A lease indexed but not yet flushed is not.
	durable map[netip.Addr]*Lease
	reuse   float64 // ReuseThreshold; SetReuseThreshold changes it

	commits groupCommit

	commitSeconds prometheus.Histogram
	commitErrors  prometheus.Counter
	reused        prometheus.Counter
}

// Open opens (or creates) the store and loads every lease in it.
func Open(cfg Config) (*Store, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OfferHold <= 0 {
		cfg.OfferHold = 30 * time.Second
	}
	if cfg.DeclineHold <= 0 {
		cfg.DeclineHold = 10 * time.Minute
	}
	lg, err := openLog(cfg.Path, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, log: lg, byIP: map[netip.Addr]*Lease{}, byMAC: map[string]*Lease{}, byID: map[string]*Lease{},
		durable: map[netip.Addr]*Lease{}, commits: groupCommit{log: lg}}
	if err := s.SetReuseThreshold(cfg.ReuseThreshold); err != nil {
		lg.close()
		return nil, err
	}
	s.SetPools(cfg.Pools)
	s.SetReserved(cfg.Reserved)
	s.load()
	s.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "netbootd_lease_commit_duration_seconds", Help: "Time from a lease write to its fsync (group commit).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
	})
	s.commitErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "netbootd_lease_commit_errors_total", Help: "Lease writes that failed (full disk, I/O error); the client got no ACK.",
	})
	s.reused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "netbootd_lease_reused_total", Help: "Renewals answered with the client's lease already on disk (reuse threshold): no write, the ACK grants what is left of it.",
	})
	s.commits.batchRecords = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "netbootd_lease_commit_batch_records", Help: "Lease records written by one group commit (one write and one fdatasync).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 12),
	})
	s.commits.flushSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "netbootd_lease_fsync_duration_seconds", Help: "Time one group commit took to write its batch and fdatasync it.",
		Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
	})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.commitSeconds, s.commitErrors, s.reused, s.commits.batchRecords, s.commits.flushSeconds, &poolCollector{s: s}} {
			if err := cfg.Registerer.Register(c); err != nil {
				s.Close()
				return nil, fmt.Errorf("lease metrics: %w", err)
			}
		}
	}
	return s, nil
}

// load indexes the records the log replayed.
func (s *Store) load() {
	for k, v := range s.log.live {
		var l Lease
		if err := json.Unmarshal(v, &l); err != nil || !l.IP.Is4() || len(l.MAC) != 6 {
			// One damaged record must not stop the server; the address stays taken until it expires.
			s.cfg.Logger.Warn("lease store: unreadable record kept out of the pools", "key", fmt.Sprintf("%x", k), "err", err)
			s.index(&Lease{IP: netip.AddrFrom4(k), State: Declined, Expires: s.cfg.Now().Add(s.cfg.DeclineHold), MAC: net.HardwareAddr{0, 0, 0, 0, 0, 0}})
			continue
		}
		s.index(&l)
		s.durable[l.IP] = &l
	}
}

func (s *Store) index(l *Lease) {
	if old := s.byIP[l.IP]; old != nil && old != l {
		s.unindex(old)
	}
	s.byIP[l.IP] = l
	if l.State != Declined {
		s.byMAC[macKey(l.Subnet, l.MAC)] = l
		if len(l.ClientID) > 0 {
			s.byID[idKey(l.Subnet, l.ClientID)] = l
		}
	}
}

// SetPools replaces the dynamic ranges (configuration reload). Existing leases stay.
func (s *Store) SetPools(ps []Pool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.pools
	s.pools = map[string]*pool{}
	for _, p := range ps {
		np := &pool{subnet: p.Subnet, ranges: p.Ranges}
		for _, r := range p.Ranges {
			np.size += int(u32(r.Last)-u32(r.First)) + 1
		}
		if o := old[p.Subnet]; o != nil && o.size == np.size {
			np.cursor = o.cursor
		}
		s.pools[p.Subnet] = np
	}
}

// SetShare makes this store allocate and renew only share index of count of every pool
// (0 <= index < count); count 1 (or 0) is the whole pool.
func (s *Store) SetShare(index, count int) error {
	if count < 0 || count > 0 && (index < 0 || index >= count) {
		return fmt.Errorf("lease: share %d of %d", index, count)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.share = share{index: index, count: count}
	return nil
}

// SetReuseThreshold changes Config.ReuseThreshold (configuration reload).
func (s *Store) SetReuseThreshold(f float64) error {
	if !(f >= 0 && f < 1) {
		return fmt.Errorf("lease: reuse threshold %v: want at least 0 and below 1", f)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reuse = f
	return nil
}

// SetReserved replaces the reserved addresses, which are never allocated to other MACs.
func (s *Store) SetReserved(r map[netip.Addr]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved = r
}

// mine reports whether l is c's: c's own lease, or one of c's MAC on an address reserved for
// that MAC (a reservation is the machine's, whatever identifier each boot stage sends).
func (s *Store) mine(l *Lease, c Client) bool {
	return c.holds(l) || s.reserved[l.IP] == c.MAC.String() && bytes.Equal(l.MAC, c.MAC)
}

// free reports whether ip can go to c now.
func (s *Store) free(ip netip.Addr, c Client, now time.Time) bool {
	if owner, ok := s.reserved[ip]; ok && owner != c.MAC.String() {
		return false
	}
	l := s.byIP[ip]
	if l == nil || s.mine(l, c) && l.State != Declined {
		return true
	}
	switch l.State {
	case Released, Expired:
		return true
	}
	return now.After(l.Expires)
}

// Offer picks an address for mac in subnet's pool and holds it for the offer time (in memory
// only: an offer promises nothing across a restart). Preference: the client's current or last
// address, the address it asks for, then the next free one.
func (s *Store) Offer(c Client, subnet string, requested netip.Addr) (netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	var ip netip.Addr
	if l := s.lookup(subnet, c); l != nil && s.ours(subnet, l.IP) && s.free(l.IP, c, now) {
		ip = l.IP
	} else if requested.IsValid() && s.ours(subnet, requested) && s.free(requested, c, now) {
		ip = requested
	} else {
		var err error
		if ip, err = s.next(subnet, c, now); err != nil {
			return netip.Addr{}, err
		}
	}
	if l := s.byIP[ip]; l != nil && s.mine(l, c) && l.State == Bound && now.Before(l.Expires) {
		return ip, nil // already bound to this client: an offer must not shorten it
	}
	s.index(&Lease{MAC: clone(c.MAC), ClientID: clone(c.ID), IP: ip, State: Offered, Subnet: subnet, Expires: now.Add(s.cfg.OfferHold)})
	return ip, nil
}

// Commit binds ip to mac for d and returns once the lease is on disk. ip must be free for mac,
// reserved for mac, or in this instance's share of a pool of subnet; otherwise ErrNotAvailable,
// or ErrOtherShare for an address of another instance's share. The lease returned may end
// sooner than d from now: a reused one (ReuseThreshold) ends when the one on disk does.
func (s *Store) Commit(c Client, subnet string, ip netip.Addr, d time.Duration, hostname string) (Lease, error) {
	return s.commit(c, subnet, ip, d, hostname, true)
}

// CommitIfDurable is Commit for a caller that must not block (the DHCP socket's reader): it
// answers as Commit does when that needs no write (the lease on disk is reused, or the
// commit is refused), and otherwise returns ErrMustWait having changed nothing, so that the
// request goes to a caller that may wait for the disk.
func (s *Store) CommitIfDurable(c Client, subnet string, ip netip.Addr, d time.Duration, hostname string) (Lease, error) {
	return s.commit(c, subnet, ip, d, hostname, false)
}

func (s *Store) commit(c Client, subnet string, ip netip.Addr, d time.Duration, hostname string, mayWait bool) (Lease, error) {
	s.mu.Lock()
	now := s.cfg.Now()
	_, reserved := s.reserved[ip]
	pos, inPool := s.position(subnet, ip)
	if !reserved && inPool && !s.share.owns(pos) {
		s.mu.Unlock()
		return Lease{}, ErrOtherShare
	}
	if !s.free(ip, c, now) || !reserved && !inPool {
		s.mu.Unlock()
		return Lease{}, ErrNotAvailable
	}
	prev := s.byIP[ip]
	l := &Lease{MAC: clone(c.MAC), ClientID: clone(c.ID), IP: ip, State: Bound, Subnet: subnet, Hostname: hostname, Expires: now.Add(d).UTC()}
	reuse := s.reusable(prev, l, d, now)
	if !reuse && !mayWait {
		s.mu.Unlock()
		return Lease{}, ErrMustWait
	}
	// This client's offer of another address lapses: it took this one.
	if old := s.lookup(subnet, c); old != nil && old.IP != ip && old.State == Offered && s.byIP[old.IP] == old {
		delete(s.byIP, old.IP)
		s.unindex(old)
	}
	if reuse {
		s.mu.Unlock()
		if s.reused != nil {
			s.reused.Inc()
		}
		return *prev, nil
	}
	s.index(l)
	done, err := s.put(l)
	s.mu.Unlock()
	if err == nil {
		err = s.wait(done)
	}
	if err == nil {
		s.mu.Lock()
		if s.byIP[ip] == l { // a later commit of this address, not yet flushed, may have replaced it
			s.durable[ip] = l
		}
		s.mu.Unlock()
	}
	if err != nil {
		s.mu.Lock()
		if s.byIP[ip] == l { // put back what was there: nothing was promised
			delete(s.byIP, ip)
			s.unindex(l)
			if prev != nil {
				s.index(prev)
			}
		}
		s.mu.Unlock()
		return Lease{}, err
	}
	return *l, nil
}

// reusable reports whether the lease on disk for this address, prev, can stand for l, the
// lease a commit at now for d would write: the same binding (client, subnet, host name), bound,
// on disk, and written less than the reuse threshold of d ago, so what is left of it is close
// to d and never more. Call with s.mu held.
func (s *Store) reusable(prev, l *Lease, d time.Duration, now time.Time) bool {
	if s.reuse == 0 || prev == nil || s.durable[l.IP] != prev || prev.State != Bound {
		return false
	}
	left := prev.Expires.Sub(now)
	if left <= 0 || left > d || float64(d-left) >= s.reuse*float64(d) {
		return false
	}
	return bytes.Equal(prev.MAC, l.MAC) && bytes.Equal(prev.ClientID, l.ClientID) &&
		prev.Subnet == l.Subnet && prev.Hostname == l.Hostname
}

// Release ends c's lease on ip (DHCPRELEASE). The client keeps first claim on the address.
func (s *Store) Release(c Client, ip netip.Addr) error {
	return s.end(c, ip, Released, 0)
}

// Decline marks ip as in use by someone unknown (DHCPDECLINE): out of the pools for DeclineHold.
func (s *Store) Decline(c Client, ip netip.Addr) error {
	return s.end(c, ip, Declined, s.cfg.DeclineHold)
}

func (s *Store) end(c Client, ip netip.Addr, st State, hold time.Duration) error {
	s.mu.Lock()
	l := s.byIP[ip]
	if l == nil || !s.mine(l, c) {
		s.mu.Unlock()
		return ErrNotAvailable
	}
	n := *l
	n.State, n.Expires = st, s.cfg.Now().Add(hold).UTC()
	s.index(&n) // a declined lease is nobody's: index keeps it out of the client entries
	done, err := s.put(&n)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.wait(done)
}

// Forget drops an offer c did not take (it chose another server).
func (s *Store) Forget(c Client, subnet string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.lookup(subnet, c); l != nil && l.State == Offered {
		s.unindex(l)
		if s.byIP[l.IP] == l {
			delete(s.byIP, l.IP)
		}
	}
}

// Find returns c's lease in subnet (any state): the server's record of that client.
func (s *Store) Find(c Client, subnet string) (Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.lookup(subnet, c); l != nil {
		return *l, true
	}
	return Lease{}, false
}

// Lookup returns mac's latest lease in subnet (any state, any client identifier).
func (s *Store) Lookup(mac net.HardwareAddr, subnet string) (Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.byMAC[macKey(subnet, mac)]; l != nil {
		return *l, true
	}
	return Lease{}, false
}

// Owner returns who holds ip now, if anyone does.
func (s *Store) Owner(ip netip.Addr) (Lease, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.byIP[ip]
	if l == nil || l.State != Bound && l.State != Offered && l.State != Declined || s.cfg.Now().After(l.Expires) {
		return Lease{}, false
	}
	return *l, true
}

// put queues l's record for the next group commit; call it with s.mu held (the file then
// changes in the order the index did) and wait for the returned channel without it.
func (s *Store) put(l *Lease) (<-chan error, error) {
	v, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	return s.commits.add(record{key: l.IP.As4(), value: v}), nil
}

// wait returns once a queued record is on disk, or why it is not.
func (s *Store) wait(done <-chan error) error {
	start := time.Now()
	err := s.commits.wait(done)
	if s.commitSeconds != nil {
		s.commitSeconds.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		if s.commitErrors != nil {
			s.commitErrors.Inc()
		}
		return fmt.Errorf("lease store write: %w", err)
	}
	return nil
}

// All lists every lease, sorted by address.
func (s *Store) All() []Lease {
	s.mu.Lock()
	out := make([]Lease, 0, len(s.byIP))
	for _, l := range s.byIP {
		out = append(out, *l)
	}
	s.mu.Unlock()
	sortLeases(out)
	return out
}

func sortLeases(ls []Lease) {
	sort.Slice(ls, func(i, j int) bool { return ls[i].IP.Less(ls[j].IP) })
}

// Run marks expired leases every interval until ctx ends; expired records are deleted from disk
// a day after they expire, so a returning client still finds its old address meanwhile.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.sweep()
		}
	}
}

func (s *Store) sweep() {
	now := s.cfg.Now()
	var drop [][4]byte
	s.mu.Lock()
	for ip, l := range s.byIP {
		switch {
		case l.State == Offered && now.After(l.Expires):
			delete(s.byIP, ip)
			s.unindex(l)
		case l.State == Bound && now.After(l.Expires):
			l.State = Expired
		case (l.State == Expired || l.State == Released || l.State == Declined) && now.After(l.Expires.Add(24*time.Hour)):
			delete(s.byIP, ip)
			delete(s.durable, ip)
			s.unindex(l)
			drop = append(drop, ip.As4())
		}
	}
	// Queued with the index lock held, like every write: a new lease for the same address,
	// indexed after this, reaches the file after the deletion.
	var done []<-chan error
	for _, k := range drop {
		done = append(done, s.commits.add(record{key: k}))
	}
	s.mu.Unlock()
	var failed error
	for _, d := range done {
		if err := s.commits.wait(d); err != nil && failed == nil {
			failed = err
		}
	}
	if failed != nil {
		s.cfg.Logger.Error("lease store: removing old leases", "err", failed)
	}
}

// Close waits for a running compaction and closes the file. Every commit that returned is
// already on disk.
func (s *Store) Close() error { return s.log.close() }

// ReadAll lists the leases in a store file that no daemon holds open.
func ReadAll(path string) ([]Lease, error) {
	var values [][]byte
	if isBolt(path) { // not yet converted: no netbootd with the lease log has opened it
		recs, err := readBolt(path, true)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			values = append(values, r.value)
		}
	} else {
		live, err := readLog(path)
		if err != nil {
			return nil, err
		}
		for _, v := range live {
			values = append(values, v)
		}
	}
	var out []Lease
	for _, v := range values {
		var l Lease
		if json.Unmarshal(v, &l) == nil {
			out = append(out, l)
		}
	}
	sortLeases(out)
	return out, nil
}

func clone[T ~[]byte](b T) T {
	if b == nil {
		return nil
	}
	return append(T(nil), b...)
}
