package tftp

import (
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// perClient renders "cfg/NAME" for 127.0.0.1 only, and remembers what it was asked.
type perClient struct {
	mu    sync.Mutex
	asked []string
}

func (p *perClient) ClientFile(name string, client netip.Addr) ([]byte, bool) {
	p.mu.Lock()
	p.asked = append(p.asked, name)
	p.mu.Unlock()
	if client != netip.MustParseAddr("127.0.0.1") || filepath.Dir(name) != "cfg" {
		return nil, false
	}
	return []byte("for 127.0.0.1: " + name + "\n"), true
}

// Files made for one client fill in what the root lacks; a file on disk wins, and a name
// neither has is still "file not found".
func TestPxelinuxClientFiles(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "cfg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "cfg", "default"), []byte("static\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{Root: root})
	pc := &perClient{}
	s.SetClientFiles(pc)
	c := pinClient(t, s.addr)

	for name, want := range map[string]string{
		"cfg/default":   "static\n",
		"/cfg/01-aa-bb": "for 127.0.0.1: cfg/01-aa-bb\n",
		"cfg\\0A0A000B": "for 127.0.0.1: cfg/0A0A000B\n",
	} {
		got, _, _, err := pinFetch(c, name, "octet")
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	if _, _, _, err := pinFetch(c, "other/x", "octet"); err == nil {
		t.Error("other/x: served, want file not found")
	}
	got, _, _, err := pinFetch(c, "cfg/nl", "netascii")
	if err != nil || string(got) != "for 127.0.0.1: cfg/nl\n" {
		t.Errorf("netascii: %q, %v", got, err)
	}
	// Files made for one client get no per-file label: one per machine would grow without bound.
	waitFor(t, s.reg, func() bool { return counter(t, s.reg, "netbootd_tftp_transfers_completed_total", "") == 4 })
	if n := counter(t, s.reg, "netbootd_tftp_file_transfers_total", "cfg/default"); n != 1 {
		t.Errorf("file_transfers_total{cfg/default} = %v, want 1", n)
	}
	if n := counter(t, s.reg, "netbootd_tftp_file_transfers_total", ""); n != 1 {
		t.Errorf("file_transfers_total = %v in all, want only cfg/default's 1", n)
	}
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, n := range pc.asked {
		if n == "cfg/default" {
			t.Error("asked for a name the root has")
		}
	}
}
