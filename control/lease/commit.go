package lease

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// groupCommit appends lease records to the log in batches, one write and one fdatasync per
// batch. While a batch is being flushed, the records that arrive wait together for the
// next. There is no timer: a lone ACK is written at once, and a storm of them is written in
// batches as big as the disk is slow, so the disk sets the batch size, not the rate.
type groupCommit struct {
	log *leaseLog
	// batchRecords and flushSeconds, when set, observe each batch: its records, and its write
	// and fdatasync (the disk's part of a commit's wait; the rest is waiting for the batch before).
	batchRecords, flushSeconds prometheus.Histogram

	mu      sync.Mutex
	pending []record
	waiters []chan error
	busy    bool // a flusher goroutine is running
}

// add queues r and returns where its outcome arrives. Callers add while holding the store's
// index lock, so records reach the file in the order the index changed.
func (g *groupCommit) add(r record) <-chan error {
	done := make(chan error, 1)
	g.mu.Lock()
	g.pending = append(g.pending, r)
	g.waiters = append(g.waiters, done)
	if !g.busy {
		g.busy = true
		go g.flush()
	}
	g.mu.Unlock()
	return done
}

func (g *groupCommit) flush() {
	for {
		g.mu.Lock()
		batch, waiters := g.pending, g.waiters
		g.pending, g.waiters = nil, nil
		if len(batch) == 0 {
			g.busy = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		start := time.Now()
		err := g.log.append(batch)
		if g.flushSeconds != nil {
			g.flushSeconds.Observe(time.Since(start).Seconds())
			g.batchRecords.Observe(float64(len(batch)))
		}
		for _, w := range waiters {
			w <- err
		}
	}
}
