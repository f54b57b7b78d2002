package lease

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// The lease file is an append-only log: a header, then records, each one address's new value
// (or its deletion). A group of records is written with one sequential write and one fdatasync
// (commit.go), so a commit costs the disk one flush at the end of the file. Replaying the log
// at start rebuilds the last value of every address. When the log has grown to several times
// what its live records need, a background compaction writes those records to a new file and
// renames it over the log.
//
//	header: "NBLEASE" 0x01
//	record: u32 length | u32 CRC-32C of payload | payload (little endian)
//	payload: 4-byte IPv4 address | value (a JSON Lease; empty: the address's record is deleted)
//
// The file is extended with zeros ahead of the records, a MiB at a time: appending inside
// space already written changes no file-system metadata, so each fdatasync flushes only the
// data (on ext4 an append that grows the file also commits the journal). A zero length ends
// the records. The zeros are written and flushed by a background goroutine once less than half
// of that space is left, never inside a commit: a commit that does not fit in the space ahead
// waits for a running extension (which writes where the commit would go), then writes past it.
//
// A kill -9 or power loss in the middle of a write leaves a torn last record: its length or
// checksum does not match, replay stops there, keeps the dropped bytes in <path>.torn and cuts
// the log back to its last whole record. No record was acknowledged before its fdatasync, so
// what is dropped was never promised to a client.
var logHeader = []byte("NBLEASE\x01")

const (
	recordHead = 8 // length + checksum
	// maxPayload bounds a record: a length beyond it is damage, not a lease.
	maxPayload = 64 << 10
	// compactMin is the log size below which it is never compacted; above it, a log three
	// times the size of its live records is.
	compactMin = 1 << 20
	// preallocate is how far ahead of the records the file is extended with zeros.
	preallocate = 1 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// record is one address's new value; a nil value deletes the address's record.
type record struct {
	key   [4]byte
	value []byte
}

func appendRecord(b []byte, r record) []byte {
	n := 4 + len(r.value)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	crc := crc32.Update(crc32.Checksum(r.key[:], crcTable), crcTable, r.value)
	b = binary.LittleEndian.AppendUint32(b, crc)
	b = append(b, r.key[:]...)
	return append(b, r.value...)
}

// parseRecord reads the record at the start of b. ok is false for a torn or damaged one.
func parseRecord(b []byte) (r record, size int, ok bool) {
	if len(b) < recordHead {
		return record{}, 0, false
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 4 || n > maxPayload || len(b) < recordHead+n {
		return record{}, 0, false
	}
	p := b[recordHead : recordHead+n]
	if crc32.Checksum(p, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return record{}, 0, false
	}
	copy(r.key[:], p)
	if n > 4 {
		r.value = append([]byte(nil), p[4:]...)
	}
	return r, recordHead + n, true
}

// replay applies the records of a log to live and returns the length of its whole records.
// errNotLog: the file does not start with the header.
func replay(data []byte, live map[[4]byte][]byte) (int, error) {
	if !bytes.HasPrefix(data, logHeader) {
		return 0, errNotLog
	}
	off := len(logHeader)
	for off < len(data) {
		r, n, ok := parseRecord(data[off:])
		if !ok {
			break
		}
		if r.value == nil {
			delete(live, r.key)
		} else {
			live[r.key] = r.value
		}
		off += n
	}
	return off, nil
}

var errNotLog = errors.New("not a netbootd lease log")

// leaseLog is the open lease file.
type leaseLog struct {
	path string
	log  *slog.Logger
	lock *os.File // flock held while open: one daemon per file

	mu         sync.Mutex // orders appends and the switch to a compacted file
	f          *os.File
	size       int64     // bytes of whole records: the next append goes here
	alloc      int64     // zeros from size to here are written and flushed
	growing    bool      // a background extension is writing zeros from alloc on
	layout     int       // bumped when the file is cut back or replaced: an extension begun before does not count
	grown      sync.Cond // signalled (L: mu) when an extension ends
	extender   sync.WaitGroup
	live       map[[4]byte][]byte // what a replay of the file gives now
	liveBytes  int64              // the size a file of only live's records would have
	broken     error              // a failed write not yet cut off: the next append cuts it first
	closed     bool
	compactor  sync.WaitGroup
	compactAt  int64 // a log this long is compacted (minCompact, or 3x its live records)
	minCompact int64 // compactMin, or less in tests
	ahead      int64 // preallocate, or less in tests

	// compactStep, in tests, sees each step of a compaction (a kill -9 could stop it there).
	compactStep func(step string)
	// extendStep, in tests, runs in a background extension before it writes its zeros.
	extendStep func()
}

// openLog opens (or creates) the log at path, migrating a bbolt file found there, and replays it.
func openLog(path string, log *slog.Logger) (*leaseLog, error) {
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lease store: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	l := &leaseLog{path: path, log: log, lock: lock, live: map[[4]byte][]byte{}, minCompact: compactMin, ahead: preallocate}
	l.grown.L = &l.mu
	if err := l.open(); err != nil {
		lock.Close()
		return nil, err
	}
	return l, nil
}

func (l *leaseLog) open() error {
	// A compaction that a crash interrupted before its rename: the log itself is whole.
	if err := os.Remove(l.path + ".compact"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lease store: %w", err)
	}
	if isBolt(l.path) {
		if err := migrateBolt(l.path); err != nil {
			return err
		}
		l.log.Info("lease store: converted the bbolt lease file to the lease log", "path", l.path)
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lease store: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("lease store: read %s: %w", l.path, err)
	}
	// A crash during the very first start can leave the header short or unwritten.
	if len(data) < len(logHeader) && (bytes.HasPrefix(logHeader, data) || len(bytes.Trim(data, "\x00")) == 0) {
		data = logHeader
		if err := writeSynced(f, logHeader, 0); err != nil {
			f.Close()
			return fmt.Errorf("lease store: %w", err)
		}
		if err := syncDir(l.path); err != nil {
			f.Close()
			return fmt.Errorf("lease store: %w", err)
		}
	}
	end, err := replay(data, l.live)
	if err != nil {
		f.Close()
		return fmt.Errorf("lease store %s: %w (moved or damaged? the file is left as it is)", l.path, err)
	}
	l.f, l.size, l.alloc = f, int64(end), int64(len(data))
	if end < len(data) && len(bytes.Trim(data[end:], "\x00")) > 0 {
		if err := l.dropTail(data, end); err != nil {
			f.Close()
			return err
		}
	}
	for k, v := range l.live {
		l.liveBytes += int64(recordHead + len(k) + len(v))
	}
	l.setCompactAt()
	return nil
}

// dropTail keeps the bytes after the last whole record in <path>.torn, then cuts them off, so
// the next append follows a whole record.
func (l *leaseLog) dropTail(data []byte, end int) error {
	tail := data[end:]
	if err := os.WriteFile(l.path+".torn", tail, 0o600); err != nil {
		return fmt.Errorf("lease store: keep torn tail: %w", err)
	}
	l.log.Warn("lease store: torn last record dropped (a crash in mid-write; it was never acknowledged)",
		"path", l.path, "offset", end, "bytes", len(tail), "kept_in", l.path+".torn")
	if err := l.cut(); err != nil {
		return fmt.Errorf("lease store: cut torn tail: %w", err)
	}
	return nil
}

// cut shortens the file to its whole records (dropping the zeros ahead too) and flushes that.
func (l *leaseLog) cut() error {
	if err := l.f.Truncate(l.size); err != nil {
		return err
	}
	l.alloc = l.size
	l.layout++
	return unix.Fdatasync(int(l.f.Fd()))
}

func (l *leaseLog) setCompactAt() {
	l.compactAt = max(l.minCompact, 3*(int64(len(logHeader))+l.liveBytes))
}

// append writes a batch of records and returns once they are on disk. On an error (a full
// disk) none of them is: the log is cut back to where it was.
func (l *leaseLog) append(batch []record) error {
	var buf []byte
	for _, r := range batch {
		buf = appendRecord(buf, r)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("lease store closed")
	}
	// An extension writes zeros from alloc on: records that do not fit below it wait for it.
	for l.growing && l.size+int64(len(buf)) > l.alloc && !l.closed {
		l.grown.Wait()
	}
	if l.closed {
		return errors.New("lease store closed")
	}
	if l.broken != nil {
		if err := l.undo(); err != nil {
			return err
		}
	}
	if err := writeSynced(l.f, buf, l.size); err != nil {
		l.broken = err
		if uerr := l.undo(); uerr != nil {
			return fmt.Errorf("%w (and %v)", err, uerr)
		}
		return err
	}
	l.size += int64(len(buf))
	l.alloc = max(l.alloc, l.size) // written past the zeros when there were not enough
	for _, r := range batch {
		if old, ok := l.live[r.key]; ok {
			l.liveBytes -= int64(recordHead + 4 + len(old))
		}
		if r.value == nil {
			delete(l.live, r.key)
		} else {
			l.live[r.key] = r.value
			l.liveBytes += int64(recordHead + 4 + len(r.value))
		}
	}
	if l.size >= l.compactAt {
		l.compactAt = 1<<63 - 1 // one at a time; the compaction sets the next threshold
		l.compactor.Add(1)
		go l.compact()
	}
	l.extendAhead()
	return nil
}

// extendAhead starts a background extension when less than half of the space ahead is left.
// It writes and flushes a block of zeros after alloc, outside the lock, so commits go on
// meanwhile in the space below alloc; alloc moves only once the zeros are on disk. On a full
// disk it gives up: records are then written past alloc, or fail on their own. Call with l.mu
// held.
func (l *leaseLog) extendAhead() {
	if l.growing || l.closed || l.alloc-l.size >= l.ahead/2 {
		return
	}
	l.growing = true
	f, from, n, layout := l.f, l.alloc, l.ahead, l.layout
	l.extender.Add(1)
	go func() {
		defer l.extender.Done()
		if l.extendStep != nil {
			l.extendStep()
		}
		err := writeSynced(f, make([]byte, n), from)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.growing = false
		l.grown.Broadcast()
		switch {
		case l.layout != layout: // cut back or compacted meanwhile: the next extension starts afresh
		case err != nil:
			_ = f.Truncate(from) // no partial zeros past alloc; failing that, zeros are harmless
		default:
			l.alloc = from + n
		}
	}()
}

// undo cuts the file back to its whole records after a failed write (whose fdatasync error
// leaves unknown what reached the disk). Call with l.mu held.
func (l *leaseLog) undo() error {
	if err := l.cut(); err != nil {
		return fmt.Errorf("lease store: cannot undo a failed write: %w", err)
	}
	l.broken = nil
	return nil
}

// compact writes the live records to <path>.compact without stopping appends, then, with
// appends held for a moment, adds what was appended meanwhile, flushes it and renames it over
// the log. A crash at any point leaves either the old log whole (and a .compact that the next
// start removes) or the new one whole.
func (l *leaseLog) compact() {
	defer l.compactor.Done()
	if err := l.compactOnce(); err != nil {
		l.log.Error("lease store: compaction failed; the log stays as it is", "err", err)
		l.mu.Lock()
		l.compactAt = 2 * max(l.size, l.minCompact) // retry once it has grown further
		l.mu.Unlock()
	}
}

func (l *leaseLog) step(s string) {
	if l.compactStep != nil {
		l.compactStep(s)
	}
}

func (l *leaseLog) compactOnce() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	snap := make([]record, 0, len(l.live))
	for k, v := range l.live {
		snap = append(snap, record{key: k, value: v})
	}
	from := l.size
	l.mu.Unlock()

	tmpPath := l.path + ".compact"
	tmp, err := os.OpenFile(tmpPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmpPath)
		}
	}()
	buf := append([]byte(nil), logHeader...)
	for _, r := range snap {
		buf = appendRecord(buf, r)
	}
	if _, err := tmp.Write(buf); err != nil {
		return err
	}
	// Flushed before appends are held, so the held part flushes only the tail.
	if err := unix.Fdatasync(int(tmp.Fd())); err != nil {
		return err
	}
	l.step("snapshot written")

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.broken != nil {
		return l.broken
	}
	// What was appended while the snapshot was written, in the order it was appended.
	tail := make([]byte, l.size-from)
	if _, err := l.f.ReadAt(tail, from); err != nil {
		return err
	}
	if _, err := tmp.Write(tail); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	l.step("compacted file flushed")
	if err := os.Rename(tmpPath, l.path); err != nil {
		return err
	}
	ok = true
	l.step("renamed")
	// From here the new file is the log: a failed directory flush only means a power loss could
	// bring back the old log, which holds the same leases.
	if err := syncDir(l.path); err != nil {
		l.log.Warn("lease store: flush state directory after compaction", "err", err)
	}
	l.f.Close()
	l.f, l.size = tmp, int64(len(buf)+len(tail))
	l.alloc = l.size
	l.layout++
	l.setCompactAt()
	return nil
}

// close waits for a running compaction and closes the file.
func (l *leaseLog) close() error {
	l.mu.Lock()
	l.closed = true
	l.grown.Broadcast()
	l.mu.Unlock()
	l.compactor.Wait()
	l.extender.Wait()
	err := l.f.Close()
	l.lock.Close()
	return err
}

// writeSynced writes b at off and flushes the file's data (and its size) to disk.
func writeSynced(f *os.File, b []byte, off int64) error {
	if _, err := f.WriteAt(b, off); err != nil {
		return err
	}
	return unix.Fdatasync(int(f.Fd()))
}

// syncDir flushes path's directory, so a file created or renamed there survives a power loss.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readLog replays the log at path without changing it (ReadAll). ErrLocked: a daemon has it open.
func readLog(path string) (map[[4]byte][]byte, error) {
	lock, err := os.Open(path + ".lock")
	if err == nil {
		defer lock.Close()
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s: %w; ask the daemon instead (--server)", path, ErrLocked)
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	live := map[[4]byte][]byte{}
	if _, err := replay(data, live); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return live, nil
}
