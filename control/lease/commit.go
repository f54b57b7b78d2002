package lease

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// groupCommit appends lease records to the log in batches, one write and one fdatasync per
// batch. While a batch is being flushed, the records that arrive wait together for the
// next, which is written as soon as that flush returns. There is no timer: a lone ACK is
// written at once, and a storm of them is written in batches as big as the disk is slow, so
// the disk sets the batch size, not the rate.
//
// The first waiter that finds no batch being written writes one itself (its record and
// whatever queued with it), so a lone commit costs no hand-off to another goroutine and back;
// records queued meanwhile are left to a background writer, so no caller writes batches
// other than its own.
type groupCommit struct {
	log *leaseLog
	// batchRecords and flushSeconds, when set, observe each batch: its records, and its write
	// and fdatasync (the disk's part of a commit's wait; the rest is waiting for the batch before).
	batchRecords, flushSeconds prometheus.Histogram

	mu      sync.Mutex
	pending []record
	waiters []chan error
	busy    bool // a batch is being written
}

// add queues r and returns where its outcome arrives; wait for it with wait. Callers add while
// holding the store's index lock, so records reach the file in the order the index changed.
func (g *groupCommit) add(r record) <-chan error {
	done := make(chan error, 1)
	g.mu.Lock()
	g.pending = append(g.pending, r)
	g.waiters = append(g.waiters, done)
	g.mu.Unlock()
	return done
}

// wait returns once the record add queued is on disk, or why it is not.
func (g *groupCommit) wait(done <-chan error) error {
	g.mu.Lock()
	if g.busy || len(g.pending) == 0 { // a writer runs and takes it next, or it was written
		g.mu.Unlock()
		return <-done
	}
	g.busy = true
	g.mu.Unlock()
	// Ours is pending and nobody writes: this batch holds it.
	if g.writeBatch() {
		go g.writeAll()
	}
	return <-done
}

// writeAll writes batches until none is pending.
func (g *groupCommit) writeAll() {
	for g.writeBatch() {
	}
}

// writeBatch writes what is pending as one batch and reports whether more was queued
// meanwhile; if not, it ends the writer's turn (busy is false). Call it only as the writer.
func (g *groupCommit) writeBatch() (more bool) {
	g.mu.Lock()
	batch, waiters := g.pending, g.waiters
	g.pending, g.waiters = nil, nil
	g.mu.Unlock()
	if len(batch) > 0 {
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
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) == 0 {
		g.busy = false
		return false
	}
	return true
}
