package tftp

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// The victim is the oldest transfer of the address holding the most, not a lone client's
// older one; removing transfers moves the choice.
func TestUnconfirmedVictim(t *testing.T) {
	u := newUnconfirmedSet()
	if u.victim() != nil {
		t.Fatal("an empty set named a victim")
	}
	t0 := time.Unix(1_800_000_000, 0)
	pt := func(ip string, port uint16, sec int) *peerTransfer {
		p := &peerTransfer{src: netip.AddrPortFrom(netip.MustParseAddr(ip), port), admitted: t0.Add(time.Duration(sec) * time.Second)}
		u.add(p)
		return p
	}
	lone := pt("10.0.0.3", 1, 0)
	floodOld := pt("10.0.0.4", 1, 1)
	floodNew := pt("10.0.0.4", 2, 2)
	if v := u.victim(); v != floodOld {
		t.Fatalf("victim %v, want the flood's oldest %v", v.src, floodOld.src)
	}
	if u.len() != 3 || u.count(netip.MustParseAddr("10.0.0.4")) != 2 {
		t.Fatalf("len %d, count(10.0.0.4) %d, want 3 and 2", u.len(), u.count(netip.MustParseAddr("10.0.0.4")))
	}
	if !u.remove(floodOld) || u.remove(floodOld) {
		t.Fatal("remove reports wrongly whether the transfer was in the set")
	}
	// One each now: the oldest of all gives way.
	if v := u.victim(); v != lone {
		t.Fatalf("victim %v, want the oldest %v", v.src, lone.src)
	}
	u.remove(lone)
	if v := u.victim(); v != floodNew {
		t.Fatalf("victim %v, want %v", v.src, floodNew.src)
	}
	u.remove(floodNew)
	if u.len() != 0 || u.victim() != nil || len(u.byAddr) != 0 {
		t.Fatalf("emptied set holds %d transfers, %d addresses", u.len(), len(u.byAddr))
	}
}

// Through random admissions and removals (admission times out of order too), the set names
// the same victim as a scan over every transfer would.
func TestUnconfirmedVictimMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	u := newUnconfirmedSet()
	var in []*peerTransfer
	t0 := time.Unix(1_800_000_000, 0)
	for step := range 5000 {
		if len(in) > 0 && rng.IntN(5) < 2 { // the set grows to about 1,000
			i := rng.IntN(len(in))
			u.remove(in[i])
			in = append(in[:i], in[i+1:]...)
		} else {
			p := &peerTransfer{
				src:      netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(rng.IntN(8))}), uint16(step)),
				admitted: t0.Add(time.Duration(step+rng.IntN(50)) * time.Millisecond),
			}
			u.add(p)
			in = append(in, p)
		}
		per := map[netip.Addr]int{}
		for _, p := range in {
			per[p.src.Addr()]++
		}
		var want *peerTransfer
		for _, p := range in {
			n, most := per[p.src.Addr()], 0
			if want != nil {
				most = per[want.src.Addr()]
			}
			if want == nil || n > most || (n == most && p.admitted.Before(want.admitted)) {
				want = p
			}
		}
		got := u.victim()
		if u.len() != len(in) || (got == nil) != (want == nil) ||
			(got != nil && (per[got.src.Addr()] != per[want.src.Addr()] || !got.admitted.Equal(want.admitted))) {
			t.Fatalf("step %d: victim %+v, want one like %+v (len %d, want %d)", step, got, want, u.len(), len(in))
		}
	}
}
