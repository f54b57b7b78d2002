package lease

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterr "go.etcd.io/bbolt/errors"
)

// Lease files before the lease log were bbolt databases (one bucket, address → JSON lease). The
// first start of a newer netbootd converts such a file in place, once: the bbolt file is kept
// beside it as <path>.bbolt, and the log takes its name. Older netbootd cannot read the log.

var bucket = []byte("leases")

// isBolt reports whether the file at path is a bbolt database: its first page is a meta page
// whose magic follows the 16-byte page header.
func isBolt(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [20]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return false
	}
	return binary.LittleEndian.Uint32(b[16:]) == 0xED0CDAED
}

// readBolt returns the records of a bbolt lease file, as they are stored.
func readBolt(path string, readOnly bool) ([]record, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: readOnly, Timeout: 500 * time.Millisecond})
	if err != nil {
		if errors.Is(err, bolterr.ErrTimeout) {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	var out []record
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r record
			copy(r.key[:], k)
			r.value = append([]byte(nil), v...)
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// migrateBolt converts the bbolt file at path into a lease log with the same records.
func migrateBolt(path string) error {
	recs, err := readBolt(path, false)
	if err != nil {
		return fmt.Errorf("lease store: convert bbolt file: %w", err)
	}
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("lease store: %w", err)
	}
	if err := writeFileSynced(path+".bbolt", old); err != nil {
		return fmt.Errorf("lease store: keep the bbolt file: %w", err)
	}
	buf := append([]byte(nil), logHeader...)
	for _, r := range recs {
		if r.value != nil {
			buf = appendRecord(buf, r)
		}
	}
	if err := writeFileSynced(path+".compact", buf); err != nil {
		return fmt.Errorf("lease store: convert bbolt file: %w", err)
	}
	if err := os.Rename(path+".compact", path); err != nil {
		return fmt.Errorf("lease store: convert bbolt file: %w", err)
	}
	return syncDir(path)
}

func writeFileSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
