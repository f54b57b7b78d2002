package main

import (
	"bytes"
	"context"
	"crypto/sha256"
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
// against want (the SHA-256), then ranges Range requests of rangeSize bytes, checked against
// the local copy at path.
func assetLoad(u string, clients int, first netip.Addr, ranges int, rangeSize int64, path, want string) (*loadResult, error) {
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
			if err == nil && want != "" && hex.EncodeToString(f.sum) != want {
				err = fmt.Errorf("GET %s: SHA-256 %x, want %s", u, f.sum, want)
			}
			note(f.bytes, false, err)
			for range ranges {
				off := rand.Int64N(size - rangeSize + 1)
				n, err := getRange(ctx, c, u, local, off, rangeSize)
				note(n, true, err)
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// getRange fetches bytes off..off+n-1 of u and compares them with the same bytes of local.
func getRange(ctx context.Context, c *http.Client, u string, local io.ReaderAt, off, n int64) (int64, error) {
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
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return int64(len(got)), err
	}
	want := make([]byte, n)
	if _, err := local.ReadAt(want, off); err != nil {
		return int64(len(got)), err
	}
	if !bytes.Equal(got, want) {
		gs, ws := sha256.Sum256(got), sha256.Sum256(want)
		return int64(len(got)), fmt.Errorf("GET %s Range %d+%d: %d bytes %x, want %x", u, off, n, len(got), gs[:6], ws[:6])
	}
	return int64(len(got)), nil
}
