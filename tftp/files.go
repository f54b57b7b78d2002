package tftp

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/singleflight"
)

var (
	errAccess   = errors.New("access violation")
	errNotFound = errors.New("file not found")
	// errNotRegular is a directory, FIFO, device or socket: answered as not found.
	errNotRegular = fmt.Errorf("not a regular file: %w", errNotFound)
)

// cleanPath turns a client-supplied name into a slash-separated path relative to the
// root, or fails with errAccess. Clients send "/pxelinux.0" and, from Windows-derived
// firmware, "boot\\x64\\wdsnbp.com"; anything that tries to climb out is refused before
// the OS is asked, and os.Root catches what remains (symlinks).
func cleanPath(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", errAccess
	}
	name = strings.ReplaceAll(name, "\\", "/")
	name = strings.TrimLeft(name, "/")
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", errAccess
		}
	}
	name = path.Clean(name)
	if name == "." || name == "" || strings.HasPrefix(name, "../") || name == ".." {
		return "", errNotFound
	}
	if !fs.ValidPath(name) {
		return "", errAccess
	}
	return name, nil
}

// content is what a transfer reads blocks from.
type content interface {
	Size() int64
	// Block returns the bytes [off, end); buf (len >= end-off) may be used as storage.
	Block(off, end int64, buf []byte) ([]byte, error)
	Close() error
	// Streamed reports whether Block copies into buf (so the caller must provide one).
	Streamed() bool
}

type memContent []byte

func (m memContent) Size() int64 { return int64(len(m)) }
func (m memContent) Block(off, end int64, _ []byte) ([]byte, error) {
	return m[off:end], nil
}
func (m memContent) Close() error   { return nil }
func (m memContent) Streamed() bool { return false }

// fileContent streams files larger than the cache budget straight from disk.
type fileContent struct {
	f    *os.File
	size int64
}

func (c *fileContent) Size() int64 { return c.size }
func (c *fileContent) Block(off, end int64, buf []byte) ([]byte, error) {
	b := buf[:end-off]
	n, err := c.f.ReadAt(b, off)
	if n == len(b) {
		return b, nil
	}
	if err == nil || err == io.EOF {
		err = fmt.Errorf("file shrank during transfer")
	}
	return nil, err
}
func (c *fileContent) Close() error   { return c.f.Close() }
func (c *fileContent) Streamed() bool { return true }

// cacheEntry is one file's contents, valid while the file's size and mtime match.
type cacheEntry struct {
	key   string
	size  int64
	mtime time.Time
	data  []byte
	elem  *list.Element
}

// fileStore resolves names to contents: virtual files first, then the root directory,
// through an LRU cache of whole files shared by all transfers.
type fileStore struct {
	root   *os.Root // nil: virtual files only
	budget int64

	mu      sync.Mutex
	virtual map[string][]byte
	entries map[string]*cacheEntry
	lru     *list.List // front = most recently used
	used    int64
	group   singleflight.Group
	reads   int // disk reads into the cache, for tests
}

func newFileStore(dir string, budget int64) (*fileStore, error) {
	s := &fileStore{
		budget:  budget,
		virtual: map[string][]byte{},
		entries: map[string]*cacheEntry{},
		lru:     list.New(),
	}
	if dir != "" {
		r, err := os.OpenRoot(dir)
		if err != nil {
			return nil, fmt.Errorf("tftp: root: %w", err)
		}
		s.root = r
	}
	return s, nil
}

func (s *fileStore) close() {
	if s.root != nil {
		s.root.Close()
	}
}

func (s *fileStore) addVirtual(name string, data []byte) {
	if n, err := cleanPath(name); err == nil {
		name = n
	}
	s.mu.Lock()
	s.virtual[name] = data
	s.mu.Unlock()
}

// open returns the contents of name, netascii-converted when asked.
func (s *fileStore) open(name string, netascii bool) (content, error) {
	clean, err := cleanPath(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	v, ok := s.virtual[clean]
	s.mu.Unlock()
	if ok {
		if netascii {
			return memContent(toNetascii(v)), nil
		}
		return memContent(v), nil
	}
	if s.root == nil {
		return nil, errNotFound
	}
	// Only regular files: opening a FIFO would wait for a writer forever (and hold up
	// shutdown), a device could be read without end. Stat first; open without blocking in
	// case the name was swapped meanwhile, and check what was opened.
	st, err := s.root.Stat(clean)
	if err != nil {
		return nil, mapOpenErr(err)
	}
	if !st.Mode().IsRegular() {
		return nil, errNotRegular
	}
	f, err := s.root.OpenFile(clean, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, mapOpenErr(err)
	}
	st, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, mapOpenErr(err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, errNotRegular
	}
	if st.Size() > s.budget {
		if netascii {
			// Rare enough not to deserve a streaming converter: convert in memory.
			defer f.Close()
			b, err := readExactly(f, st.Size())
			if err != nil {
				return nil, err
			}
			return memContent(toNetascii(b)), nil
		}
		return &fileContent{f: f, size: st.Size()}, nil
	}
	defer f.Close()
	key := clean
	if netascii {
		key = "netascii:" + clean
	}
	if b, ok := s.lookup(key, st); ok {
		return memContent(b), nil
	}
	// Singleflight on the exact version so a hundred clients booting at once read it once.
	flight := fmt.Sprintf("%s\x00%d\x00%d", key, st.Size(), st.ModTime().UnixNano())
	res, err, _ := s.group.Do(flight, func() (any, error) {
		if b, ok := s.lookup(key, st); ok {
			return b, nil
		}
		b, err := readExactly(f, st.Size())
		if err != nil {
			return nil, err
		}
		if netascii {
			b = toNetascii(b)
		}
		s.insert(key, st, b)
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return memContent(res.([]byte)), nil
}

func readExactly(f *os.File, size int64) ([]byte, error) {
	b := make([]byte, size)
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return b, nil
}

func mapOpenErr(err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errNotFound
	default:
		// Escapes via symlinks, permission problems and the like.
		return errAccess
	}
}

func (s *fileStore) lookup(key string, st fs.FileInfo) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	if !ok {
		return nil, false
	}
	if e.size != st.Size() || !e.mtime.Equal(st.ModTime()) {
		// Changed on disk: forget it; the caller re-reads.
		s.remove(e)
		return nil, false
	}
	s.lru.MoveToFront(e.elem)
	return e.data, true
}

func (s *fileStore) insert(key string, st fs.FileInfo, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if old, ok := s.entries[key]; ok {
		s.remove(old)
	}
	if int64(len(b)) > s.budget {
		return // netascii growth can push a file over budget; serve it uncached
	}
	e := &cacheEntry{key: key, size: st.Size(), mtime: st.ModTime(), data: b}
	e.elem = s.lru.PushFront(e)
	s.entries[key] = e
	s.used += int64(len(b))
	// Evicted contents stay alive for transfers still holding them; the GC frees them after.
	for s.used > s.budget {
		last := s.lru.Back()
		if last == nil {
			break
		}
		s.remove(last.Value.(*cacheEntry))
	}
}

func (s *fileStore) remove(e *cacheEntry) {
	s.lru.Remove(e.elem)
	delete(s.entries, e.key)
	s.used -= int64(len(e.data))
}

// toNetascii converts LF to CR LF and a bare CR to CR NUL (RFC 1350, RFC 764).
func toNetascii(b []byte) []byte {
	n := len(b)
	for _, c := range b {
		if c == '\n' || c == '\r' {
			n++
		}
	}
	if n == len(b) {
		return b
	}
	out := make([]byte, 0, n)
	for _, c := range b {
		switch c {
		case '\n':
			out = append(out, '\r', '\n')
		case '\r':
			out = append(out, '\r', 0)
		default:
			out = append(out, c)
		}
	}
	return out
}
