package syslog

import (
	"container/list"
	"net/netip"
	"time"
)

// maxSources bounds the rate limiter's memory; the least recently heard source goes first.
// Forgetting a source loses little: a source idle long enough to be the oldest has usually
// refilled its bucket anyway.
const maxSources = 65536

// limiter is a token bucket per source address. Not safe for concurrent use: only the read
// goroutine touches it.
type limiter struct {
	rate, burst float64
	max         int
	buckets     map[netip.Addr]*list.Element // of *bucket
	lru         *list.List                   // front: most recently heard
}

type bucket struct {
	addr   netip.Addr
	tokens float64
	last   time.Time
}

func newLimiter(perSecond, max int) *limiter {
	return &limiter{rate: float64(perSecond), burst: 2 * float64(perSecond), max: max,
		buckets: map[netip.Addr]*list.Element{}, lru: list.New()}
}

// allow takes a token from addr's bucket if it has one.
func (l *limiter) allow(addr netip.Addr, now time.Time) bool {
	e, ok := l.buckets[addr]
	if !ok {
		if len(l.buckets) >= l.max {
			oldest := l.lru.Back()
			delete(l.buckets, oldest.Value.(*bucket).addr)
			l.lru.Remove(oldest)
		}
		e = l.lru.PushFront(&bucket{addr: addr, tokens: l.burst, last: now})
		l.buckets[addr] = e
	} else {
		l.lru.MoveToFront(e)
	}
	b := e.Value.(*bucket)
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
