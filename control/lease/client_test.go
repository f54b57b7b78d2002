package lease

import (
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/netbootd/netbootd/tests/testclock"
)

var (
	duidA = []byte{0xff, 0, 0, 0, 1, 0, 4, 0xaa}
	duidB = []byte{0xff, 0, 0, 0, 1, 0, 4, 0xbb}
)

// RFC 2131 §4.2: a client that sends an identifier is identified by it: two clients on one
// MAC with different identifiers hold two leases, and one identifier on another MAC (a new
// NIC) keeps its address.
func TestRFC2131_4_2_LeasesKeyedByClientIdentifier(t *testing.T) {
	clk := testclock.New(time.Unix(1e9, 0))
	s := open(t, filepath.Join(t.TempDir(), "l.db"), clk, "10.0.0.10", "10.0.0.11")
	defer s.Close()
	a, b := ClientOf(mac(1), duidA), ClientOf(mac(1), duidB)
	ipA := bind(t, s, a)
	ipB := bind(t, s, b)
	if ipA == ipB {
		t.Fatalf("two identifiers on one MAC share %s", ipA)
	}
	if l, ok := s.Find(a, subnet); !ok || l.IP != ipA || string(l.ClientID) != string(duidA) {
		t.Errorf("Find(a) = %+v %v, want %s with its identifier", l, ok, ipA)
	}
	if ip, err := s.Offer(ClientOf(mac(7), duidA), subnet, netip.Addr{}); err != nil || ip != ipA {
		t.Errorf("identifier A on another MAC offered %s (%v), want its %s", ip, err, ipA)
	}
	// A renewal by the other identifier of A's address is refused.
	if _, err := s.Commit(b, subnet, ipA, time.Hour, ""); err == nil {
		t.Errorf("client B bound client A's address")
	}
	if err := s.Release(b, ipA); err == nil {
		t.Errorf("client B released client A's lease")
	}
}

// RFC 2132 §9.14: an identifier of type 1 and the client's MAC says only the MAC, so firmware
// PXE (no 61) and iPXE (61 = 01+MAC) on one machine are one client.
func TestRFC2132_9_14_HardwareTypeIdentifierIsTheMAC(t *testing.T) {
	if c := ClientOf(mac(1), append([]byte{1}, mac(1)...)); c.ID != nil {
		t.Errorf("01+MAC kept as identifier %x", c.ID)
	}
	if c := ClientOf(mac(1), append([]byte{1}, mac(2)...)); c.ID == nil {
		t.Errorf("01+another MAC dropped")
	}
	clk := testclock.New(time.Unix(1e9, 0))
	s := open(t, filepath.Join(t.TempDir(), "l.db"), clk, "10.0.0.10", "10.0.0.11")
	defer s.Close()
	ip := bind(t, s, ClientOf(mac(1), nil))
	if got, err := s.Offer(ClientOf(mac(1), append([]byte{1}, mac(1)...)), subnet, netip.Addr{}); err != nil || got != ip {
		t.Errorf("iPXE offered %s (%v), firmware had %s", got, err, ip)
	}
}

// A lease file written before identifiers were kept: its records (no client_id) are read, and
// belong to their MAC whatever identifier the client now sends (as Kea matches a lease without
// one); binding again stores the identifier.
func TestOldLeaseFileStillReadable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := `{"mac":"AgAAAAAB","ip":"10.0.0.11","state":2,"subnet":"10.0.0.0/24","hostname":"h","expires":"2031-01-01T00:00:00Z"}`
	if err := db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.Put([]byte{10, 0, 0, 11}, []byte(old))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	clk := testclock.New(time.Unix(1e9, 0))
	s := open(t, path, clk, "10.0.0.10", "10.0.0.11")
	if l, ok := s.Lookup(mac(1), subnet); !ok || l.IP.String() != "10.0.0.11" || l.State != Bound {
		t.Fatalf("old record: %+v %v", l, ok)
	}
	c := ClientOf(mac(1), duidA)
	if ip, err := s.Offer(c, subnet, netip.Addr{}); err != nil || ip.String() != "10.0.0.11" {
		t.Fatalf("client with an identifier offered %s (%v), its MAC holds 10.0.0.11", ip, err)
	}
	if _, err := s.Commit(c, subnet, netip.MustParseAddr("10.0.0.11"), time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path, clk, "10.0.0.10", "10.0.0.11")
	defer s.Close()
	if l, ok := s.Find(c, subnet); !ok || string(l.ClientID) != string(duidA) {
		t.Errorf("identifier not stored: %+v %v", l, ok)
	}
}

// A reservation belongs to its MAC: each boot stage (no identifier, 01+MAC, a DUID) binds the
// reserved address, one after the other.
func TestReservedAddressAcrossIdentifiers(t *testing.T) {
	clk := testclock.New(time.Unix(1e9, 0))
	s := open(t, filepath.Join(t.TempDir(), "l.db"), clk, "10.0.0.10", "10.0.0.11")
	defer s.Close()
	hw := mac(0xffff) // 02:00:00:00:ff:ff holds 10.0.0.12
	reserved := netip.MustParseAddr("10.0.0.12")
	for _, id := range [][]byte{nil, append([]byte{1}, hw...), duidA, duidB, nil} {
		if _, err := s.Commit(ClientOf(hw, id), subnet, reserved, time.Hour, ""); err != nil {
			t.Errorf("identifier %x: %v", id, err)
		}
	}
	if _, err := s.Commit(ClientOf(mac(3), duidA), subnet, reserved, time.Hour, ""); err == nil {
		t.Error("another MAC with the same identifier bound the reservation")
	}
}

func bind(t *testing.T, s *Store, c Client) netip.Addr {
	t.Helper()
	ip, err := s.Offer(c, subnet, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(c, subnet, ip, time.Hour, ""); err != nil {
		t.Fatal(err)
	}
	return ip
}
