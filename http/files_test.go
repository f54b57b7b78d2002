package http

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A file larger than several sendfile chunks is served exactly, whole and by ranges, over a real
// TCP connection (the sendfile path): ranges that cross chunk boundaries, suffix and open ranges,
// an end past the file, several ranges at once, HEAD. Hostile ranges get no more than the file:
// overlapping ranges that add up to more than it are answered with the file once, inverted or
// malformed ones 416, and none of them leaves the download slot taken.
func TestAssetRangesLargeFile(t *testing.T) {
	e := startServer(t, Config{MaxDownloadsPerClient: 1})
	size := 3*stallChunk + 123
	body := make([]byte, size)
	_, _ = rand.Read(body)
	if err := os.WriteFile(filepath.Join(e.assets, "big.img"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	last := size - 1
	span := func(a, b int) string { return string(body[a : b+1]) }
	for _, tt := range []struct {
		name, method, rng string
		code              int
		body              string
		contentRange      string
	}{
		{"whole", "GET", "", 200, string(body), ""},
		{"across chunks", "GET", fmt.Sprintf("bytes=%d-%d", stallChunk-5, 2*stallChunk+5), 206,
			span(stallChunk-5, 2*stallChunk+5), fmt.Sprintf("bytes %d-%d/%d", stallChunk-5, 2*stallChunk+5, size)},
		{"suffix", "GET", "bytes=-1000", 206, span(size-1000, last), fmt.Sprintf("bytes %d-%d/%d", size-1000, last, size)},
		{"open", "GET", fmt.Sprintf("bytes=%d-", size-10), 206, span(size-10, last), fmt.Sprintf("bytes %d-%d/%d", size-10, last, size)},
		{"end past the file", "GET", "bytes=100-999999999999", 206, span(100, last), fmt.Sprintf("bytes 100-%d/%d", last, size)},
		{"head", "HEAD", "", 200, "", ""},
		{"head range", "HEAD", "bytes=0-9", 206, "", fmt.Sprintf("bytes 0-9/%d", size)},
		{"overlapping ranges adding up past the file", "GET", "bytes=" + strings.Repeat("0-,", 20) + "0-", 200, string(body), ""},
		{"inverted", "GET", "bytes=10-5", 416, "", ""},
		{"malformed", "GET", "bytes=abc", 416, "", ""},
		{"start past the file", "GET", fmt.Sprintf("bytes=%d-", size), 416, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := map[string]string{}
			if tt.rng != "" {
				h["Range"] = tt.rng
			}
			r := e.do(t, tt.method, "/assets/big.img", h)
			if r.code != tt.code {
				t.Fatalf("%s %s: %d, want %d", tt.method, tt.rng, r.code, tt.code)
			}
			if r.code >= 400 {
				if strings.Contains(r.body, string(body[:16])) {
					t.Errorf("error answer holds file bytes")
				}
				return
			}
			if r.body != tt.body {
				t.Errorf("body: %d bytes, want %d (equal: %v)", len(r.body), len(tt.body), r.body == tt.body)
			}
			if got := r.header.Get("Content-Range"); got != tt.contentRange {
				t.Errorf("Content-Range %q, want %q", got, tt.contentRange)
			}
			wantLen := len(tt.body)
			if tt.method == "HEAD" {
				wantLen = size
				if tt.code == 206 {
					wantLen = 10
				}
			}
			if got := r.header.Get("Content-Length"); got != strconv.Itoa(wantLen) {
				t.Errorf("Content-Length %q, want %d", got, wantLen)
			}
		})
	}

	t.Run("several ranges", func(t *testing.T) {
		a, b := fmt.Sprintf("%d-%d", 2*stallChunk-1, 2*stallChunk+8), "0-9"
		r := e.do(t, "GET", "/assets/big.img", map[string]string{"Range": "bytes=" + a + "," + b})
		mt, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
		if r.code != 206 || err != nil || mt != "multipart/byteranges" {
			t.Fatalf("%d %q (%v), want 206 multipart/byteranges", r.code, r.header.Get("Content-Type"), err)
		}
		mr := multipart.NewReader(strings.NewReader(r.body), params["boundary"])
		for _, want := range [][2]int{{2*stallChunk - 1, 2*stallChunk + 8}, {0, 9}} {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(p)
			if err != nil || !bytes.Equal(got, body[want[0]:want[1]+1]) {
				t.Errorf("part %v: %d bytes (%v), not the file's", want, len(got), err)
			}
			if cr := p.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", want[0], want[1], size) {
				t.Errorf("part %v: Content-Range %q", want, cr)
			}
		}
		if _, err := mr.NextPart(); err != io.EOF {
			t.Errorf("more parts than asked: %v", err)
		}
	})

	// One download slot per client: each answer above gave its slot back, so this one is served.
	if r := e.do(t, "GET", "/assets/big.img", map[string]string{"Range": "bytes=0-0"}); r.code != 206 || r.body != span(0, 0) {
		t.Errorf("after the hostile ranges: %d %q, want 206 and the first byte", r.code, r.body)
	}
}
