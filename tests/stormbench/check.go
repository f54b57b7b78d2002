package main

import (
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
)

// Every byte a machine receives is checked, because the benchmark counts only correct boots. The
// check is CRC-32C (a CPU instruction, several GB/s), not SHA-256 (a few hundred MB/s on the
// bench machine): the simulator shares the cores with the server it measures, and a costly
// check slows every server alike, hiding the difference between them.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func newSum() hash.Hash { return crc32.New(castagnoli) }

// expected is what a fetched file must be: its size and CRC-32C, from a local copy.
type expected struct {
	path  string
	bytes int64
	sum   string
}

// expect reads the local copy at path; an empty path expects nothing (nil).
func expect(path string) (*expected, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := newSum()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, err
	}
	return &expected{path: path, bytes: n, sum: hex.EncodeToString(h.Sum(nil))}, nil
}

// check says how what a machine got (n bytes with CRC-32C sum) differs from e, if it does.
func (e *expected) check(what string, n int64, sum string) error {
	if e == nil || (n == e.bytes && sum == e.sum) {
		return nil
	}
	return fmt.Errorf("%s: %d bytes with CRC-32C %s, want %s's %d bytes with %s", what, n, sum, e.path, e.bytes, e.sum)
}
