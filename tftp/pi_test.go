package tftp

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// piTree is a TFTP root shaped like a Raspberry Pi netboot server: the firmware and kernel
// shared at the root, one Pi's own config.txt and cmdline.txt in its folder.
func piTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range map[string]string{
		"start4.elf":             "shared start4.elf",
		"fixup4.dat":             "shared fixup4.dat",
		"config.txt":             "shared config.txt",
		"cmdline.txt":            "shared cmdline.txt",
		"pis/node03/config.txt":  "node03 config.txt",
		"pis/node03/cmdline.txt": "node03 cmdline.txt",
		"d9780558/start4.elf":    "own-folder start4.elf",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// A mapped serial's requests come from its folder, else from the root; an unmapped serial
// without a folder gets "file not found" at once, so its bootloader clears the prefix and asks
// at the root; a serial folder in the root is served as it is.
func TestPiTFTPFolders(t *testing.T) {
	s := startServer(t, Config{Root: piTree(t)})
	s.SetFolders(map[string]string{"9ffefdef": "pis/node03"})
	c := pinClient(t, s.addr)
	for name, want := range map[string]string{
		"9ffefdef/config.txt":  "node03 config.txt",
		"9ffefdef/cmdline.txt": "node03 cmdline.txt",
		"9ffefdef/start4.elf":  "shared start4.elf",
		"9ffefdef/fixup4.dat":  "shared fixup4.dat",
		"/9ffefdef/config.txt": "node03 config.txt",
		"d9780558/start4.elf":  "own-folder start4.elf",
		"config.txt":           "shared config.txt",
	} {
		got, _, _, err := pinFetch(c, name, "octet")
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"12345678/start4.elf", "9ffefdef/recover4.elf", "9ffefdef/../../etc/passwd", "9ffefdef"} {
		if got, _, _, err := pinFetch(c, name, "octet"); err == nil {
			t.Errorf("%s: served %q, want an error", name, got)
		}
	}
	// A reload replaces the map: an unmapped serial with no folder of that name is not found.
	s.SetFolders(nil)
	if got, _, _, err := pinFetch(c, "9ffefdef/config.txt", "octet"); err == nil {
		t.Errorf("after the map is gone: served %q, want file not found", got)
	}
}

// The Pi's size probes: an ERROR right after the OACK (as EDK2 sends), or ERROR 0 "Early
// terminate" after acknowledging the OACK and receiving the first block (as the Pi firmware
// sends). Neither is a failed transfer; each is counted as a probe. A client that ends a
// transfer later, or one that asked no tsize, still fails.
func TestPiTFTPSizeProbe(t *testing.T) {
	ts := startServer(t, Config{Root: piTree(t)})
	size := strconv.Itoa(len("shared start4.elf"))

	// Each request from a new port, as the Pi and EDK2 send them.
	oack := func(opts ...option) (*rawClient, *net.UDPAddr) {
		t.Helper()
		c := newRaw(t, ts.addr)
		c.send(c.srv, appendRRQ(nil, "start4.elf", "octet", opts...))
		p, from := c.mustRecv()
		if p.Op != opOACK {
			t.Fatalf("got %+v, want OACK", p)
		}
		for _, o := range p.Options {
			if o.Name == "tsize" && o.Value != size {
				t.Fatalf("tsize %s, want %s", o.Value, size)
			}
		}
		return c, from
	}

	// EDK2-style: ERROR 8 at once.
	c, from := oack(option{"tsize", "0"}, option{"blksize", "1024"})
	c.send(from, appendError(nil, errOptionRefused, "size only"))
	// Pi-style: ACK 0, DATA 1, ERROR 0 "Early terminate".
	c, from = oack(option{"tsize", "0"}, option{"blksize", "1024"})
	c.send(from, appendAck(nil, 0))
	if p, _ := c.mustRecv(); p.Op != opDATA || p.Block != 1 {
		t.Fatalf("got %+v, want DATA 1", p)
	}
	c.send(from, appendError(nil, errNotDefined, "Early terminate"))
	waitFor(t, ts.reg, func() bool { return counter(t, ts.reg, "netbootd_tftp_size_probes_total", "") == 2 })

	// Then the real fetch, as the Pi does next.
	got, _, _, err := pinFetch(pinClient(t, ts.addr), "start4.elf", "octet")
	if err != nil || string(got) != "shared start4.elf" {
		t.Fatalf("fetch after the probes: %q, %v", got, err)
	}
	waitFor(t, ts.reg, func() bool { return counter(t, ts.reg, "netbootd_tftp_transfers_completed_total", "") == 1 })

	// Not probes: an ERROR with no tsize asked is the client refusing the options.
	c, from = oack(option{"blksize", "1024"})
	c.send(from, appendError(nil, errOptionRefused, "no"))
	waitFor(t, ts.reg, func() bool {
		return counter(t, ts.reg, "netbootd_tftp_transfers_failed_total", "option_refused") == 1
	})
	if n := counter(t, ts.reg, "netbootd_tftp_size_probes_total", ""); n != 2 {
		t.Errorf("size probes %v, want 2", n)
	}
	if n := counter(t, ts.reg, "netbootd_tftp_transfers_failed_total", "client_error"); n != 0 {
		t.Errorf("client_error failures %v, want 0", n)
	}
}
