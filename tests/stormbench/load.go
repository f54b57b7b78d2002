package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"
)

// loadResult is the HTTP asset load alone: many clients each fetching a large file whole, then
// Range requests at random offsets (what a resumed or parallel download does).
type loadResult struct {
	Clients  int     `json:"clients"`
	Requests int     `json:"requests"`
	Ranges   int     `json:"range_requests"`
	Failed   int     `json:"failed"`
	Bytes    int64   `json:"bytes"`
	Seconds  float64 `json:"seconds"`
	Errors   []string
}

// assetLoad has clients (each from its own address, from first on) fetch u whole, checked
// against the local copy at path (size and CRC-32C), then ranges Range requests of rangeSize
// bytes, checked byte for byte against the same bytes of the copy.
func assetLoad(u string, clients int, first netip.Addr, ranges int, rangeSize int64, path string) (*loadResult, error) {
	want, err := expect(path)
	if err != nil {
		return nil, err
	}
	local, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer local.Close()
	st, err := local.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if rangeSize > size {
		rangeSize = size
	}
	res := &loadResult{Clients: clients}
	var mu sync.Mutex
	note := func(n int64, isRange bool, err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Requests++
		if isRange {
			res.Ranges++
		}
		res.Bytes += n
		if err != nil {
			res.Failed++
			if len(res.Errors) < 10 {
				res.Errors = append(res.Errors, err.Error())
			}
		}
	}
	ctx := context.Background()
	start := time.Now()
	var wg sync.WaitGroup
	addr := first
	for range clients {
		from := addr
		addr = addr.Next()
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 30 * time.Second}
			c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableCompression: true}}
			defer c.CloseIdleConnections()
			f, _, err := get(ctx, c, u)
			if err == nil {
				err = want.check("GET "+u, f.bytes, hex.EncodeToString(f.sum))
			}
			note(f.bytes, false, err)
			got, local := make([]byte, rangeSize), rangeCheck{local, make([]byte, rangeSize)}
			for range ranges {
				off := rand.Int64N(size - rangeSize + 1)
				n, err := getRange(ctx, c, u, got, local, off)
				note(n, true, err)
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// rangeCheck is the local copy and a buffer for the bytes a range must be.
type rangeCheck struct {
	file io.ReaderAt
	want []byte
}

// getRange fetches len(got) bytes of u at off into got and compares them with the same bytes
// of the local copy; the buffers are the caller's, reused, so a range allocates nothing large.
func getRange(ctx context.Context, c *http.Client, u string, got []byte, local rangeCheck, off int64) (int64, error) {
	n := int64(len(got))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return 0, fmt.Errorf("GET %s Range %d+%d: %s, want 206", u, off, n, resp.Status)
	}
	if resp.ContentLength != n {
		return 0, fmt.Errorf("GET %s Range %d+%d: Content-Length %d", u, off, n, resp.ContentLength)
	}
	m, err := io.ReadFull(resp.Body, got)
	if err != nil {
		return int64(m), fmt.Errorf("GET %s Range %d+%d: %w after %d bytes", u, off, n, err, m)
	}
	if _, err := local.file.ReadAt(local.want, off); err != nil {
		return int64(m), err
	}
	if i := firstDiff(got, local.want); i >= 0 {
		return int64(m), fmt.Errorf("GET %s Range %d+%d: byte %d differs", u, off, n, off+int64(i))
	}
	return int64(m), nil
}

// firstDiff is the index of the first byte where a and b (of one length) differ, or -1.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return -1
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
