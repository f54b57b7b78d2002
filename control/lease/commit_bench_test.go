package lease

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCommit: clients renew leases among 10,000 bound ones, each waiting for its commit to
// be durable, as the REQUEST→ACK path does: one at a time (the cost of one commit), and 64 at
// once (the DHCP server's default workers; group commit). Reports commits/s and the mean time one
// commit waits. go test -run '^$' -bench Commit -benchtime 20000x ./control/lease/
func BenchmarkCommit(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprint("clients=", clients), func(b *testing.B) { benchCommit(b, clients) })
	}
}

func benchCommit(b *testing.B, clients int) {
	const leases = 10000
	pools := []Pool{{Subnet: subnet, Ranges: []Range{{netip.MustParseAddr("10.1.0.0"), netip.MustParseAddr("10.1.255.255")}}}}
	s, err := Open(Config{Path: filepath.Join(b.TempDir(), "leases.db"), Pools: pools})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ips := make([]netip.Addr, leases)
	var wg sync.WaitGroup
	for g := range 64 { // fill concurrently: group commit keeps the setup short
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < leases; i += 64 {
				c := Client{MAC: mac(i)}
				ip, err := s.Offer(c, subnet, netip.Addr{})
				if err == nil {
					_, err = s.Commit(c, subnet, ip, time.Hour, "")
				}
				if err != nil {
					b.Error(err)
					return
				}
				ips[i] = ip
			}
		}()
	}
	wg.Wait()
	var next, waited atomic.Int64
	b.ResetTimer()
	start := time.Now()
	for g := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				i := int(n*7919+int64(g)) % leases
				t0 := time.Now()
				if _, err := s.Commit(Client{MAC: mac(i)}, subnet, ips[i], time.Hour, ""); err != nil {
					b.Error(err)
					return
				}
				waited.Add(int64(time.Since(t0)))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	b.ReportMetric(float64(b.N)/el.Seconds(), "commits/s")
	b.ReportMetric(float64(waited.Load())/float64(b.N)/1e6, "ms/commit")
}
