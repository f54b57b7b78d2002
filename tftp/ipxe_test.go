package tftp

import (
	"os"
	"path/filepath"
	"testing"
)

func TestServeIPXE(t *testing.T) {
	dir, root, boot := t.TempDir(), t.TempDir(), t.TempDir()
	write := func(d, name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(d, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(dir, "undionly.kpxe", "debian kpxe")
	write(dir, "snponly.efi", "debian snponly") // the root has its own: that one wins
	write(root, "snponly.efi", "own snponly")
	write(dir, "README", "not a binary")
	write(boot, "ipxe.efi", "debian efi") // Debian's ipxe.efi is a symlink into /boot
	if err := os.Symlink(filepath.Join(boot, "ipxe.efi"), filepath.Join(dir, "ipxe.efi")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir.efi"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, Config{Root: root})
	if n := s.ServeIPXE(dir); n != 2 {
		t.Fatalf("ServeIPXE served %d binaries, want 2 (undionly.kpxe, ipxe.efi)", n)
	}
	for name, want := range map[string]string{"undionly.kpxe": "debian kpxe", "ipxe.efi": "debian efi", "snponly.efi": "own snponly"} {
		got, _, _, err := pinFetch(pinClient(t, s.addr), name, "octet")
		if err != nil || string(got) != want {
			t.Errorf("%s = %q (%v), want %q", name, got, err, want)
		}
	}
	if n := s.ServeIPXE(filepath.Join(dir, "missing")); n != 0 {
		t.Errorf("a missing directory served %d binaries", n)
	}
}
