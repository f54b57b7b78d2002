package lease

import (
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommit writes lease records to the bbolt file in batches, one transaction and one flush
// per batch. While a batch is being flushed, the records that arrive wait together for the
// next. There is no timer: a lone ACK is written at once, and a storm of them is written in
// batches as big as the disk is slow, so the disk sets the batch size, not the rate.
type groupCommit struct {
	db *bolt.DB

	mu      sync.Mutex
	pending []record
	waiters []chan error
	busy    bool // a flusher goroutine is running
}

// record is one key's new value; a nil value deletes the key.
type record struct {
	key   [4]byte
	value []byte
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
		err := g.db.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			for _, r := range batch {
				var err error
				if r.value == nil {
					err = b.Delete(r.key[:])
				} else {
					err = b.Put(r.key[:], r.value)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
		for _, w := range waiters {
			w <- err
		}
	}
}
