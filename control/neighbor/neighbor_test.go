//go:build integration

package neighbor

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/tests/netns"
)

// neighborLink is a namespace with a veth "nb0" (10.9.0.1/16) whose neighbour table holds n
// permanent entries 10.9.x.y → 02:00:00:00:x:y, one stale-free FAILED-less table to look in.
func neighborLink(t testing.TB, n int) (*netns.NS, int) {
	netns.RequireRoot(t)
	ns, peer := netns.New(t, "nbn"), netns.New(t, "nbn")
	netns.Veth(t, ns, "nb0", "10.9.0.1/16", peer, "nb1", "")
	var batch strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&batch, "neigh add 10.9.%d.%d lladdr 02:00:00:00:%02x:%02x dev nb0 nud permanent\n", 1+i/250, 1+i%250, 1+i/250, 1+i%250)
	}
	f := filepath.Join(t.TempDir(), "neigh.batch")
	if err := os.WriteFile(f, []byte(batch.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "ip", "-batch", f)
	ifindex := 0
	if err := ns.Do(t, func() error {
		l, err := netlink.LinkByName("nb0")
		if err == nil {
			ifindex = l.Attrs().Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ns, ifindex
}

// The one-entry request and the dump agree; an address with no entry is ENOENT, not a dump.
func TestNeighborLookup(t *testing.T) {
	ns, ifindex := neighborLink(t, 300)
	err := ns.Do(t, func() error {
		table := Table(ifindex)
		for _, tc := range []struct{ ip, mac string }{
			{"10.9.1.1", "02:00:00:00:01:01"}, {"10.9.2.50", "02:00:00:00:02:32"}, {"10.9.9.9", ""}, {"10.8.0.1", ""},
		} {
			ip := netip.MustParseAddr(tc.ip)
			mac, ok := table(ip)
			if got := mac.String(); ok != (tc.mac != "") || got != tc.mac {
				return fmt.Errorf("Table(%s) = %q %v, want %q", tc.ip, got, ok, tc.mac)
			}
			one, err1 := lookup(ifindex, ip)
			dump, err2 := lookupByDump(ifindex, ip)
			if tc.mac == "" {
				if !errors.Is(err1, unix.ENOENT) || !errors.Is(err2, unix.ENOENT) {
					return fmt.Errorf("%s: one entry %v, dump %v; want ENOENT from both", tc.ip, err1, err2)
				}
				continue
			}
			if err1 != nil || err2 != nil || one.HardwareAddr.String() != dump.HardwareAddr.String() {
				return fmt.Errorf("%s: one entry %v %v, dump %v %v", tc.ip, one, err1, dump, err2)
			}
		}
		if _, ok := table(netip.MustParseAddr("::1")); ok {
			return errors.New("::1 found a neighbour")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkNeighborLookup is the cost of identifying one request's machine with 1,000 entries
// in the table: one entry asked for, against a dump.
func BenchmarkNeighborLookup(b *testing.B) {
	ns, ifindex := neighborLink(b, 1000)
	ip := netip.MustParseAddr("10.9.4.250")
	for name, fn := range map[string]func(int, netip.Addr) (*netlink.Neigh, error){"one-entry": lookup, "dump": lookupByDump} {
		b.Run(name, func(b *testing.B) {
			if err := ns.Do(b, func() error {
				for i := 0; i < b.N; i++ {
					if _, err := fn(ifindex, ip); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// TestIPv6NeighborLookup: an IPv6 client (a DHCPv6 client with a DUID naming no MAC, an HTTP
// request from a SLAAC address) is found in the NDP table, by one request and by the dump.
func TestIPv6NeighborLookup(t *testing.T) {
	ns, ifindex := neighborLink(t, 1)
	ns.Run(t, "ip", "-6", "neigh", "add", "fe80::1234", "lladdr", "02:00:00:00:66:09", "dev", "nb0", "nud", "permanent")
	ns.Run(t, "ip", "-6", "neigh", "add", "fd00:9::9", "lladdr", "02:00:00:00:66:0a", "dev", "nb0", "nud", "permanent")
	err := ns.Do(t, func() error {
		table := Table(ifindex)
		for _, tc := range []struct{ ip, mac string }{
			{"fe80::1234", "02:00:00:00:66:09"}, {"fd00:9::9", "02:00:00:00:66:0a"}, {"fd00:9::8", ""}, {"10.9.1.1", "02:00:00:00:01:01"},
		} {
			mac, ok := table(netip.MustParseAddr(tc.ip))
			if got := mac.String(); ok != (tc.mac != "") || got != tc.mac {
				return fmt.Errorf("Table(%s) = %q %v, want %q", tc.ip, got, ok, tc.mac)
			}
			if tc.mac != "" {
				if dump, err := lookupByDump(ifindex, netip.MustParseAddr(tc.ip)); err != nil || dump.HardwareAddr.String() != tc.mac {
					return fmt.Errorf("dump %s: %v %v", tc.ip, dump, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
