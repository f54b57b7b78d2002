//go:build integration

package tests

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbootd/netbootd/tests/netns"
)

// tftpRack is a rack whose netbootd serves a TFTP root of files with awkward sizes, and one
// client namespace with an address on the LAN.
type tftpRack struct {
	*rack
	d      *daemon
	client *netns.NS
	root   string
	sums   map[string][32]byte
}

func newTFTPRack(t *testing.T) *tftpRack {
	t.Helper()
	r := &tftpRack{rack: newRack(t), root: t.TempDir(), sums: map[string][32]byte{}}
	for name, size := range map[string]int{"empty": 0, "b511": 511, "b512": 512, "b513": 513,
		"boot/loader.efi": 1<<20 + 7, "big.img": 8 << 20} {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		p := filepath.Join(r.root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r.sums[name] = sha256.Sum256(data)
	}
	// A secret outside the root, and a symlink inside it pointing there.
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("outside the root"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(r.root, "escape")); err != nil {
		t.Fatal(err)
	}
	cfg := rackConfig + "tftp: {root: " + r.root + ", max_window: 64}\n"
	r.d = startNetbootd(t, r.server, "sv0", "10.10.0.1", cfg, "", goPath...)
	r.client = r.rack.client(t, "02:00:00:00:08:01")
	r.client.Run(t, "ip", "addr", "add", "10.10.0.50/24", "dev", "eth0")
	return r
}

func (r *tftpRack) check(t *testing.T, client, name, local string) {
	t.Helper()
	data, err := os.ReadFile(local)
	if err != nil {
		t.Errorf("%s %s: nothing written: %v", client, name, err)
		return
	}
	if sha256.Sum256(data) != r.sums[name] {
		t.Errorf("%s %s: %d bytes, checksum differs", client, name, len(data))
	}
}

// Real TFTP clients fetch every file intact: atftp with RFC 7440 windows and blksize, tftp-hpa
// in lock-step with 512-byte blocks, curl with blksize.
func TestTFTPRealClients(t *testing.T) {
	r := newTFTPRack(t)
	out := t.TempDir()
	for name := range r.sums {
		for _, tc := range []struct {
			client string
			args   func(local string) []string
		}{
			{"atftp windowsize 16 blksize 1468", func(local string) []string {
				return []string{"atftp", "--get", "-r", name, "-l", local, "--option", "blksize 1468", "--option", "windowsize 16", "10.10.0.1"}
			}},
			{"atftp plain", func(local string) []string {
				return []string{"atftp", "--get", "-r", name, "-l", local, "10.10.0.1"}
			}},
			{"tftp-hpa", func(local string) []string {
				return []string{"tftp", "-m", "binary", "10.10.0.1", "-c", "get", name, local}
			}},
			{"curl blksize 1468", func(local string) []string {
				return []string{"curl", "-sS", "--tftp-blksize", "1468", "-o", local, "tftp://10.10.0.1/" + name}
			}},
		} {
			if name == "big.img" && tc.client == "tftp-hpa" {
				continue // 16,384 lock-step round trips: covered by the others
			}
			if name == "empty" && strings.HasPrefix(tc.client, "curl") {
				continue // curl 7.88 fails on any empty TFTP file (getpeername ENOTCONN; tftpd-hpa too)
			}
			local := filepath.Join(out, strings.NewReplacer("/", "_", " ", "_").Replace(tc.client+"-"+name))
			args := tc.args(local)
			if o, err := r.client.Exec(args[0], args[1:]...); err != nil {
				t.Errorf("%s %s: %v\n%s", tc.client, name, err, o)
				continue
			}
			r.check(t, tc.client, name, local)
		}
	}
	if n := r.d.metric("netbootd_tftp_transfers_completed_total"); n < 20 {
		t.Errorf("netbootd_tftp_transfers_completed_total = %v", n)
	}
	if n := r.d.metric("netbootd_tftp_file_transfers_total", `file="boot/loader.efi"`); n < 4 {
		t.Errorf("netbootd_tftp_file_transfers_total{file=boot/loader.efi} = %v, want 4", n)
	}
	if n := r.d.metric("netbootd_tftp_negotiated_windowsize_count"); n < 1 {
		t.Errorf("no windowsize negotiated")
	}
}

// Hostile paths get an error and never a byte from outside the root.
func TestTFTPHostilePaths(t *testing.T) {
	r := newTFTPRack(t)
	out := t.TempDir()
	for i, name := range []string{"../../../../etc/passwd", "/../../etc/passwd", "boot/../../../etc/passwd",
		"..\\..\\etc\\passwd", "escape", "/etc/passwd", "nonexistent"} {
		local := filepath.Join(out, fmt.Sprint("f", i))
		o, err := r.client.Exec("tftp", "-m", "binary", "10.10.0.1", "-c", "get", name, local)
		data, _ := os.ReadFile(local)
		if len(data) > 0 {
			t.Errorf("%q: got %d bytes (%v)\n%s", name, len(data), err, o)
		}
		if !strings.Contains(strings.ToLower(o), "error") {
			t.Errorf("%q: no error reported by tftp-hpa:\n%s", name, o)
		}
	}
	// A Windows-style path inside the root is normalised and served.
	local := filepath.Join(out, "win")
	if o, err := r.client.Exec("tftp", "-m", "binary", "10.10.0.1", "-c", "get", "boot\\loader.efi", local); err != nil {
		t.Fatalf("boot\\loader.efi: %v\n%s", err, o)
	}
	r.check(t, "tftp-hpa", "boot/loader.efi", local)
}

// Debian's iPXE binaries are served by default, by the names the DHCP boot rules use.
func TestTFTPServesIPXEBinaries(t *testing.T) {
	want, err := os.ReadFile("/usr/lib/ipxe/undionly.kpxe")
	if err != nil {
		t.Fatalf("Debian's ipxe package is not installed (make deps): %v", err)
	}
	r := newTFTPRack(t)
	local := filepath.Join(t.TempDir(), "undionly.kpxe")
	if o, err := r.client.Exec("atftp", "--get", "-r", "undionly.kpxe", "-l", local, "--option", "windowsize 8", "10.10.0.1"); err != nil {
		t.Fatalf("atftp undionly.kpxe: %v\n%s", err, o)
	}
	got, _ := os.ReadFile(local)
	if sha256.Sum256(got) != sha256.Sum256(want) {
		t.Errorf("undionly.kpxe: %d bytes, want the %d of /usr/lib/ipxe", len(got), len(want))
	}
}

// With an upload directory, tftp-hpa's put stores a new file intact; the same name again is refused.
func TestTFTPUpload(t *testing.T) {
	r := newRack(t)
	up := t.TempDir()
	startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig+"tftp: {upload_dir: "+up+"}\n", "", goPath...)
	c := r.client(t, "02:00:00:00:08:02")
	c.Run(t, "ip", "addr", "add", "10.10.0.51/24", "dev", "eth0")
	data := make([]byte, 300<<10+5)
	_, _ = rand.Read(data)
	local := filepath.Join(t.TempDir(), "dmesg.log")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err := c.Exec("tftp", "-m", "binary", "10.10.0.1", "-c", "put", local, "node02-dmesg.log"); err != nil || strings.Contains(strings.ToLower(o), "error") {
		t.Fatalf("tftp put: %v\n%s", err, o)
	}
	got, err := os.ReadFile(filepath.Join(up, "node02-dmesg.log"))
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("uploaded file: %d bytes, %v", len(got), err)
	}
	if o, _ := c.Exec("tftp", "-m", "binary", "10.10.0.1", "-c", "put", local, "node02-dmesg.log"); !strings.Contains(strings.ToLower(o), "exists") {
		t.Errorf("second upload of the same name not refused:\n%s", o)
	}
}
