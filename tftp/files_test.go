package tftp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readContent(t *testing.T, c content) []byte {
	t.Helper()
	buf := make([]byte, c.Size())
	b, err := c.Block(0, c.Size(), buf)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), b...)
}

func TestPathSafety(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	writeFile(t, filepath.Join(base, "secret"), []byte("secret"))
	writeFile(t, filepath.Join(base, "x"), []byte("outside"))
	writeFile(t, filepath.Join(root, "pxelinux.0"), []byte("pxe"))
	writeFile(t, filepath.Join(root, "sub", "file"), []byte("subfile"))
	writeFile(t, filepath.Join(root, "x"), []byte("inside x"))
	if err := os.Symlink(filepath.Join(base, "secret"), filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret", filepath.Join(root, "sub", "rel")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("file", filepath.Join(root, "sub", "inner")); err != nil {
		t.Fatal(err)
	}
	fs, err := newFileStore(root, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.close()

	for _, name := range []string{
		"../etc/passwd", "/../x", "a/../../x", "..\\x", "x\x00y", "escape", "sub/rel",
		"sub\\..\\..\\secret", "/../../../../etc/passwd", "..", "sub/../x",
	} {
		c, err := fs.open(name, false)
		if err == nil {
			t.Errorf("%q: served %q", name, readContent(t, c))
			continue
		}
		if !errors.Is(err, errAccess) && !errors.Is(err, errNotFound) {
			t.Errorf("%q: err = %v", name, err)
		}
	}
	for name, want := range map[string]string{
		"/pxelinux.0":  "pxe",
		"pxelinux.0":   "pxe",
		"sub\\file":    "subfile",
		"//sub//file":  "subfile",
		"./sub/./file": "subfile",
		"sub/inner":    "subfile",
	} {
		c, err := fs.open(name, false)
		if err != nil {
			t.Errorf("%q: %v", name, err)
			continue
		}
		if got := readContent(t, c); string(got) != want {
			t.Errorf("%q = %q, want %q", name, got, want)
		}
	}
	for _, name := range []string{"missing", "/", "sub"} {
		if _, err := fs.open(name, false); !errors.Is(err, errNotFound) {
			t.Errorf("%q: err = %v, want not found", name, err)
		}
	}
}

func TestVirtualFiles(t *testing.T) {
	fs, err := newFileStore("", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	fs.addVirtual("/ipxe.efi", []byte("ipxe"))
	for _, name := range []string{"ipxe.efi", "/ipxe.efi"} {
		c, err := fs.open(name, false)
		if err != nil || string(readContent(t, c)) != "ipxe" {
			t.Fatalf("%q: %v", name, err)
		}
	}
	if _, err := fs.open("other", false); !errors.Is(err, errNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestCacheSingleflightAndReload(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "kernel")
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	writeFile(t, p, data)
	fs, err := newFileStore(root, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.close()

	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := fs.open("kernel", false)
			if err != nil {
				t.Error(err)
				return
			}
			if c.Streamed() || c.Size() != int64(len(data)) {
				t.Errorf("streamed=%v size=%d", c.Streamed(), c.Size())
			}
		}()
	}
	wg.Wait()
	if fs.reads != 1 {
		t.Fatalf("100 concurrent opens read the file %d times, want 1", fs.reads)
	}

	// A new version (different size and mtime) is picked up.
	writeFile(t, p, []byte("new"))
	if err := os.Chtimes(p, time.Now(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	c, err := fs.open("kernel", false)
	if err != nil || string(readContent(t, c)) != "new" {
		t.Fatalf("after change: %v", err)
	}
	if fs.reads != 2 {
		t.Fatalf("reads = %d, want 2", fs.reads)
	}
}

func TestCacheEvictionAndStreaming(t *testing.T) {
	root := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		writeFile(t, filepath.Join(root, n), bytes.Repeat([]byte(n), 400))
	}
	big := bytes.Repeat([]byte("BIG!"), 1000)
	writeFile(t, filepath.Join(root, "big"), big)
	fs, err := newFileStore(root, 1000)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.close()
	for _, n := range []string{"a", "b", "a", "c"} {
		if _, err := fs.open(n, false); err != nil {
			t.Fatal(err)
		}
	}
	// a was used more recently than b, so b was evicted to make room for c.
	if _, ok := fs.entries["b"]; ok {
		t.Error("b still cached")
	}
	if _, ok := fs.entries["a"]; !ok {
		t.Error("a evicted")
	}
	if fs.used > 1000 {
		t.Errorf("used = %d over budget", fs.used)
	}

	c, err := fs.open("big", false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Streamed() {
		t.Fatal("a file over the budget should be streamed")
	}
	buf := make([]byte, 512)
	b, err := c.Block(512, 1024, buf)
	if err != nil || !bytes.Equal(b, big[512:1024]) {
		t.Fatalf("block: %v", err)
	}
	if got := readContent(t, c); !bytes.Equal(got, big) {
		t.Fatal("streamed content differs")
	}
}

func TestNetascii(t *testing.T) {
	if got := toNetascii([]byte("a\nb\rc\r\n")); string(got) != "a\r\nb\r\x00c\r\x00\r\n" {
		t.Fatalf("got %q", got)
	}
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "cfg"), []byte("line1\nline2\n"))
	fs, err := newFileStore(root, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.close()
	c, err := fs.open("cfg", true)
	if err != nil {
		t.Fatal(err)
	}
	if got := readContent(t, c); string(got) != "line1\r\nline2\r\n" || c.Size() != 14 {
		t.Fatalf("got %q size %d", got, c.Size())
	}
	// The octet version is cached separately.
	c, err = fs.open("cfg", false)
	if err != nil || c.Size() != 12 {
		t.Fatalf("octet: %v size %d", err, c.Size())
	}
}
