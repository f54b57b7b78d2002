package tftp

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A FIFO (or a directory) in the root is refused at once: the transfer does not hang waiting
// for a writer, and shutdown is not held up.
func TestNonRegularFilesRefused(t *testing.T) {
	root := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("fifo", filepath.Join(root, "link-to-fifo")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "f"), []byte("regular"))
	s, err := New(Config{Listen: "127.0.0.1:0", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	c := newRaw(t, s.Addr().String())
	for _, name := range []string{"fifo", "link-to-fifo", "dir"} {
		c.send(c.srv, appendRRQ(nil, name, "octet"))
		c.expectError(errFileNotFound, "")
	}
	c.send(c.srv, appendRRQ(nil, "f", "octet"))
	if p, _ := c.mustRecv(); p.Op != opDATA || string(p.Data) != "regular" {
		t.Fatalf("got %+v", p)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// Requests padded with any number of NULs, as some clients send them, are served.
func TestPaddedRequests(t *testing.T) {
	ts := startServer(t, Config{})
	ts.AddFile("f", []byte("x"))
	for pad := 1; pad <= 4; pad++ {
		for _, opts := range [][]option{nil, {{"tsize", "0"}}} {
			c := newRaw(t, ts.addr)
			rrq := append(appendRRQ(nil, "f", "octet", opts...), make([]byte, pad)...)
			c.send(c.srv, rrq)
			p, tid := c.mustRecv()
			want := opDATA
			if opts != nil {
				want = opOACK
			}
			if p.Op != want {
				t.Fatalf("%d NULs, options %v: got %+v", pad, opts, p)
			}
			c.send(tid, appendError(nil, errNotDefined, "enough"))
			// Until it has ended the transfer counts as unacknowledged (4 at most per address).
			waitFor(t, ts.reg, func() bool { return counter(t, ts.reg, "netbootd_tftp_active_transfers", "") == 0 })
		}
	}
}

func uploadWith(t *testing.T, addr, name string, data []byte) error {
	c := pinClient(t, addr)
	rf, err := c.Send(name, "octet")
	if err != nil {
		return err
	}
	_, err = rf.ReadFrom(bytes.NewReader(data))
	return err
}

// A NAME.part left by an upload that cannot be running any more (netbootd stopped mid-upload)
// no longer blocks uploads of NAME; one that is being written still does.
func TestStalePartReclaimed(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, Config{UploadDir: dir, Timeout: 200 * time.Millisecond, Retries: 2})
	stale := filepath.Join(dir, "log.txt.part")
	writeFile(t, stale, []byte("left by a crash"))
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	data := randomData(3000, 51)
	if err := uploadWith(t, srv.addr, "log.txt", data); err != nil {
		t.Fatalf("upload over a stale part: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "log.txt")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("stored %d bytes, %v", len(got), err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("the part is still there")
	}
	// A recent part: another upload may be writing it.
	writeFile(t, filepath.Join(dir, "other.part"), []byte("in progress"))
	if err := uploadWith(t, srv.addr, "other", data); err == nil || !strings.Contains(err.Error(), "in progress") {
		t.Fatalf("upload over a fresh part: %v", err)
	}
}

// The upload directory holds at most UploadQuota bytes: past it uploads get ERROR 3 and leave
// nothing behind; room made by hand is seen by the next upload.
func TestUploadQuota(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, Config{UploadDir: dir, UploadQuota: 100 << 10})
	writeFile(t, filepath.Join(dir, "existing"), make([]byte, 60<<10))
	if err := uploadWith(t, srv.addr, "a", randomData(50<<10, 52)); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("upload past the quota: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.part")); err == nil {
		t.Fatal("a refused upload left its part")
	}
	if err := uploadWith(t, srv.addr, "b", randomData(30<<10, 53)); err != nil {
		t.Fatalf("upload within the quota: %v", err)
	}
	if err := uploadWith(t, srv.addr, "c", randomData(20<<10, 54)); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("upload past the quota: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "existing")); err != nil {
		t.Fatal(err)
	}
	if err := uploadWith(t, srv.addr, "c", randomData(20<<10, 54)); err != nil {
		t.Fatalf("upload after room was made: %v", err)
	}
	if n := counter(t, srv.reg, "netbootd_tftp_transfers_failed_total", "disk_full"); n != 2 {
		t.Errorf("disk_full failures = %v, want 2", n)
	}
}
