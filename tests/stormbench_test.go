//go:build integration

package tests

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// stormBenchResult is what tests/stormbench writes with -json (its summary and result types).
type stormBenchResult struct {
	Machines, Done, Failed int
	Errors                 []string
	Results                []struct {
		MAC, IP, Error string
		TFTPStyle      string `json:"tftp_style"`
		BootFileSize   int64  `json:"boot_file_bytes"`
		BootFileSum    string `json:"boot_file_crc32c"`
		Scripts        []struct{ URL string }
		Kernel         *struct{ CRC32C string }
		Initrds        []struct{ CRC32C string }
		PXEDHCP        float64 `json:"pxe_dhcp_s"`
		TFTP           float64 `json:"tftp_s"`
		Done           float64 `json:"done_s"`
	}
}

// The storm benchmark's simulator (make bench-storm) boots 10 machines through netbootd across a
// bridge and every one completes every step with the right bytes: PXE DHCP, TFTP of ipxe.efi
// (half of them with windowsize 4, which netbootd negotiates), iPXE DHCP, the chain and
// per-machine scripts, the kernel and the initrd, each from its own leased address and MAC.
// Given a wrong checksum, the same simulator reports every machine failed: the benchmark's
// "done" counts only correct boots.
func TestStormBenchTenMachines(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "stormbench")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/netbootd/netbootd/tests/stormbench").CombinedOutput(); err != nil {
		t.Fatalf("build stormbench: %v\n%s", err, out)
	}
	ipxeEFI, err := os.ReadFile("/usr/lib/ipxe/ipxe.efi")
	if err != nil {
		t.Fatalf("Debian's ipxe package (scripts/deps.sh): %v", err)
	}
	assets := t.TempDir()
	kernel, initrd := stormRandomFile(t, assets, "vmlinuz", 1<<20), stormRandomFile(t, assets, "initrd.img", 3<<20)
	kernelPath, initrdPath := filepath.Join(assets, "vmlinuz"), filepath.Join(assets, "initrd.img")
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(`interface: {mode: authoritative}
http: {assets: %s}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.199"]
    options: {router: 10.10.0.1}
profiles:
  - {name: storm, kernel: vmlinuz, initrds: [initrd.img], args: "console=ttyS0"}
groups:
  - {name: all, profile: storm}
`, assets), "", "--xdp", "off")
	clients := r.lanHost(t, "")
	sums := []string{"-tftp-file", "/usr/lib/ipxe/ipxe.efi", "-kernel-file", kernelPath, "-initrd-file", initrdPath}

	res := runStormBench(t, clients, bin, append([]string{"-n", "10"}, sums...)...)
	if res.Machines != 10 || res.Done != 10 || res.Failed != 0 || len(res.Results) != 10 {
		t.Fatalf("%d machines, %d done, %d failed: %v", res.Machines, res.Done, res.Failed, res.Errors)
	}
	ips, styles := map[string]bool{}, map[string]int{}
	for _, m := range res.Results {
		switch {
		case m.Error != "":
			t.Errorf("%s: %s", m.MAC, m.Error)
		case ips[m.IP] || !strings.HasPrefix(m.IP, "10.10.0."):
			t.Errorf("%s: address %q (pool 10.10.0.100-199, one per machine)", m.MAC, m.IP)
		case m.BootFileSize != int64(len(ipxeEFI)) || m.BootFileSum != stormCRC32C(ipxeEFI):
			t.Errorf("%s: boot file %d bytes, CRC-32C %s; want ipxe.efi's %d", m.MAC, m.BootFileSize, m.BootFileSum, len(ipxeEFI))
		case len(m.Scripts) != 2 || !strings.HasSuffix(m.Scripts[0].URL, "/ipxe/boot.ipxe") || !strings.Contains(m.Scripts[1].URL, "/ipxe/script?mac="):
			t.Errorf("%s: scripts %+v, want the chain script then the machine's own", m.MAC, m.Scripts)
		case m.Kernel == nil || m.Kernel.CRC32C != stormCRC32C(kernel) || len(m.Initrds) != 1 || m.Initrds[0].CRC32C != stormCRC32C(initrd):
			t.Errorf("%s: kernel %+v, initrds %+v: not the assets' bytes", m.MAC, m.Kernel, m.Initrds)
		case !(0 < m.PXEDHCP && m.PXEDHCP < m.TFTP && m.TFTP < m.Done):
			t.Errorf("%s: steps out of order: DHCP %v, TFTP %v, done %v", m.MAC, m.PXEDHCP, m.TFTP, m.Done)
		}
		ips[m.IP] = true
		styles[m.TFTPStyle]++
	}
	if styles["lock-step"] != 5 || styles["windowsize 4"] != 5 {
		t.Errorf("TFTP styles %v, want 5 lock-step and 5 windowsize 4", styles)
	}
	if got := strings.Count(d.logs(), "windowsize=4"); got < 5 {
		t.Errorf("netbootd logged %d transfers with windowsize=4, want the 5 windowed machines'", got)
	}

	// A kernel of the right size with one byte changed: its CRC-32C differs.
	wrongKernel := filepath.Join(t.TempDir(), "vmlinuz")
	kernel[len(kernel)/2] ^= 1
	if err := os.WriteFile(wrongKernel, kernel, 0o644); err != nil {
		t.Fatal(err)
	}
	wrong := append([]string{"-n", "2", "-mac-prefix", "0x5c"}, sums...)
	wrong[len(wrong)-3] = wrongKernel // -kernel-file
	if res := runStormBench(t, clients, bin, wrong...); res.Done != 0 || res.Failed != 2 {
		t.Errorf("expecting a kernel one bit off: %d done, %d failed; want every machine failed", res.Done, res.Failed)
	}
}

func runStormBench(t *testing.T, ns interface {
	Exec(string, ...string) (string, error)
}, bin string, args ...string) stormBenchResult {
	t.Helper()
	out := filepath.Join(t.TempDir(), "storm.json")
	text, err := ns.Exec(bin, append([]string{"-i", "eth0", "-json", out}, args...)...)
	t.Logf("stormbench %s:\n%s", strings.Join(args, " "), text)
	if err != nil {
		t.Fatalf("stormbench: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var res stormBenchResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("stormbench -json: %v", err)
	}
	return res
}

func stormRandomFile(t *testing.T, dir, name string, size int) []byte {
	t.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

// stormCRC32C is how tests/stormbench checks what it receives.
func stormCRC32C(b []byte) string {
	return fmt.Sprintf("%08x", crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}
