//go:build integration

package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tests/netns"
	"github.com/netbootd/netbootd/tests/qemu"
)

// tftpRoot is a new TFTP root holding a copy of each file (source path → path in the root);
// installedBy names the packages scripts/deps.sh installs the sources with ("" for none).
func tftpRoot(t *testing.T, installedBy string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for src, dst := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			if installedBy != "" {
				t.Fatalf("%v (scripts/deps.sh installs %s)", err, installedBy)
			}
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(root, dst), b)
	}
	return root
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// bootVM starts a VM on r's LAN (bridge br0, whose own router advertisements stay off) and
// waits until its payload is done; a VM that does not finish within the deadline fails the
// test. Its serial console must hold each of wants.
func (r *rack) bootVM(t *testing.T, opt qemu.Options, within time.Duration, wants ...string) {
	t.Helper()
	opt.Bridge, opt.NoRouterAdvertisements = "br0", true
	begin := time.Now()
	vm := qemu.Start(t, r.lan, opt)
	if _, err := vm.WaitFor(qemu.Marker+" done", within); err != nil {
		t.Fatalf("did not boot: %v", err)
	}
	t.Logf("%s booted in %v", opt.Name, time.Since(begin).Round(time.Second))
	serial := vm.Serial()
	for _, want := range wants {
		if !strings.Contains(serial, want) {
			t.Errorf("serial console lacks %q", want)
		}
	}
}

// machine is the timeline netbootd keeps of the machine with this MAC.
func (d *daemon) machine(mac string) machines.Machine {
	d.t.Helper()
	var m machines.Machine
	d.getJSON("/api/v1/machines/"+mac, &m)
	return m
}

// stranger is a client on r's LAN at 10.10.0.60, an address no reservation names.
func (r *rack) stranger(t *testing.T, mac string) *netns.NS {
	t.Helper()
	c := r.client(t, mac)
	c.Run(t, "ip", "addr", "add", "10.10.0.60/24", "dev", "eth0")
	return c
}

// expectTFTPNotFound checks that c's TFTP client (atftp) gets "file not found" from netbootd at
// 10.10.0.1 for each of names.
func expectTFTPNotFound(t *testing.T, c *netns.NS, names ...string) {
	t.Helper()
	for _, name := range names {
		o, err := c.Exec("atftp", "--get", "-r", name, "-l", filepath.Join(t.TempDir(), "got"), "10.10.0.1")
		if err == nil || !strings.Contains(strings.ToLower(o), "not found") {
			t.Errorf("a stranger got %s: %v\n%s", name, err, o)
		}
	}
}
