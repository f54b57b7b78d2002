//go:build integration

package qemu

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/netns"
)

const serverIP = "10.77.0.1"

// bootScript is what iPXE runs, under BIOS straight from the NIC ROM and under UEFI after EDK2's
// PXE chain-loaded ipxe.efi. Debian's ipxe.efi hands the initrd to the kernel's EFI stub by name,
// hence initrd=initrd.gz; the BIOS path ignores it.
const bootScript = `#!ipxe
kernel tftp://` + serverIP + `/vmlinuz initrd=initrd.gz console=ttyS0 panic=-1 netbootd.booted=http://` + serverIP + `:8080/booted/${net0/mac}
initrd tftp://` + serverIP + `/initrd.gz
boot
`

// lab is dnsmasq (DHCP + TFTP) in namespace "server", wired by a veth to bridge br0 in namespace
// "lan", where the VMs' taps go; plus an HTTP server recording the payload's booted callbacks.
type lab struct {
	server, lan *netns.NS
	dnsmasq     *lockedBuffer
	mu          sync.Mutex
	booted      []string // paths the callback requested
}

func newLab(t *testing.T) *lab {
	t.Helper()
	Available(t)
	p := BuildPayload(t)
	l := &lab{server: netns.New(t, "qsv"), lan: netns.New(t, "qlan"), dnsmasq: &lockedBuffer{}}
	l.lan.Bridge(t, "br0")
	netns.Veth(t, l.server, "sv0", serverIP+"/24", l.lan, "svp", "")
	l.lan.Enslave(t, "svp", "br0")

	root := t.TempDir()
	for src, dst := range map[string]string{p.Kernel: "vmlinuz", p.Initrd: "initrd.gz", "/usr/lib/ipxe/ipxe.efi": "ipxe.efi"} {
		if err := copyFile(src, filepath.Join(root, dst)); err != nil {
			t.Fatalf("TFTP root: %v (ipxe.efi is in Debian's ipxe package)", err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "boot.ipxe"), []byte(bootScript), 0o644); err != nil {
		t.Fatal(err)
	}

	err := l.server.Do(t, func() error {
		ln, err := net.Listen("tcp", serverIP+":8080")
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			l.mu.Lock()
			l.booted = append(l.booted, r.URL.Path)
			l.mu.Unlock()
			fmt.Fprintln(w, "ok")
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		return nil
	})
	if err != nil {
		t.Fatalf("booted-callback server: %v", err)
	}

	state := t.TempDir()
	cmd := l.server.Cmd(t, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
		"--interface=sv0", "--bind-interfaces", "--user=root", "--log-dhcp", "--no-ping",
		"--pid-file="+filepath.Join(state, "pid"), "--dhcp-leasefile="+filepath.Join(state, "leases"),
		"--dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,1h",
		"--enable-tftp", "--tftp-root="+root,
		// iPXE (the BIOS NIC ROM, or ipxe.efi) gets the script; EDK2's PXE gets ipxe.efi.
		"--dhcp-userclass=set:ipxe,iPXE",
		"--dhcp-match=set:efi64,option:client-arch,7",
		"--dhcp-boot=tag:ipxe,boot.ipxe",
		"--dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi",
		// iPXE waits ~2 s for ProxyDHCP offers unless told there are none (175.176 no-pxedhcp).
		"--dhcp-option=tag:ipxe,encap:175,176,1b")
	cmd.Stdout, cmd.Stderr = l.dnsmasq, l.dnsmasq
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dnsmasq: %v (dnsmasq-base)", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dnsmasq log:\n%s", l.dnsmasq.String())
		}
	})
	// dnsmasq is ready once it has bound TFTP; it says so on stderr.
	const ready = time.Minute // a condition, generous for a loaded machine
	deadline := time.Now().Add(ready)
	for !strings.Contains(l.dnsmasq.String(), "TFTP root") {
		select {
		case err := <-exited:
			t.Fatalf("dnsmasq exited: %v\n%s", err, l.dnsmasq.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dnsmasq not ready after %v:\n%s", ready, l.dnsmasq.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return l
}

func (l *lab) bootedPaths() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.booted...)
}

var dhcpLine = regexp.MustCompile(`NETBOOTD-PAYLOAD dhcp ip=(\S+) mac=(\S+)`)

// TestBoot boots each firmware's path to the payload against dnsmasq, proving the harness works
// without netbootd. VMs boot one after the other: TCG on two shared cores.
func TestBoot(t *testing.T) {
	for i, tc := range []struct {
		name     string
		firmware Firmware
		direct   bool          // -kernel: no firmware network boot
		timeout  time.Duration // to the payload's end: a condition, for TCG on a loaded machine
		dnsmasq  []string      // what the DHCP server must have logged
	}{
		{name: "direct", firmware: BIOS, direct: true, timeout: 3 * time.Minute},
		{name: "bios", firmware: BIOS, timeout: 5 * time.Minute,
			dnsmasq: []string{"user class: iPXE", "sent /.*/boot.ipxe to", "sent /.*/initrd.gz to"}},
		{name: "uefi", firmware: UEFI, timeout: 6 * time.Minute,
			dnsmasq: []string{"vendor class: PXEClient:Arch:00007", "sent /.*/ipxe.efi to", "user class: iPXE", "sent /.*/initrd.gz to"}},
	} {
		mac := fmt.Sprintf("52:54:00:77:00:%02x", i+1)
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t)
			opt := Options{Name: tc.name, Bridge: "br0", MAC: mac, Firmware: tc.firmware}
			if tc.direct {
				p := BuildPayload(t)
				opt.Kernel, opt.Initrd, opt.Append = p.Kernel, p.Initrd, "console=ttyS0 panic=-1"
			}
			vm := Start(t, l.lan, opt)

			up, err := vm.WaitFor(`NETBOOTD-PAYLOAD up mac=`, tc.timeout)
			if err != nil {
				t.Fatal(err)
			}
			upAt := time.Since(vm.Started())
			done, err := vm.WaitFor(`NETBOOTD-PAYLOAD done`, tc.timeout-upAt)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: payload up after %.1fs, done after %.1fs", tc.name, upAt.Seconds(), time.Since(vm.Started()).Seconds())
			if want := "mac=" + mac; !strings.HasSuffix(up, want) || !strings.HasSuffix(done, want) {
				t.Errorf("payload lines %q, %q: want %s", up, done, want)
			}

			line, err := vm.WaitFor(dhcpLine.String(), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			m := dhcpLine.FindStringSubmatch(line)
			if ip := net.ParseIP(m[1]).To4(); ip == nil || ip[2] != 0 || ip[3] < 100 || ip[3] > 199 || m[2] != mac {
				t.Errorf("dhcp line %q: want an address in 10.77.0.100-199 for %s", line, mac)
			}
			if err := vm.Wait(2 * time.Minute); err != nil {
				t.Errorf("poweroff: %v", err)
			}

			if !tc.direct {
				if _, err := vm.WaitFor(`NETBOOTD-PAYLOAD booted-callback ok`, 0); err != nil {
					t.Error(err)
				}
				if got := l.bootedPaths(); len(got) != 1 || got[0] != "/booted/"+mac {
					t.Errorf("booted callbacks %q, want [/booted/%s]", got, mac)
				}
			}
			log := l.dnsmasq.String()
			for _, want := range tc.dnsmasq {
				if !regexp.MustCompile(want).MatchString(log) {
					t.Errorf("dnsmasq log lacks %q", want)
				}
			}
		})
	}
}

// TestPayload checks what went into the initramfs: busybox, the scripts and the virtio modules
// with virtio_ring before virtio (busybox insmod does not resolve dependencies).
func TestPayload(t *testing.T) {
	p := BuildPayload(t)
	out, err := exec.Command("sh", "-c", `zcat "$1" | cpio -it --quiet`, "sh", p.Initrd).CombinedOutput()
	if err != nil {
		t.Fatalf("list %s: %v\n%s", p.Initrd, err, out)
	}
	for _, want := range []string{"init", "bin/busybox", "dev/console", "etc/udhcpc.script", "lib/modules/order", "lib/modules/virtio_net.ko"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`).Match(out) {
			t.Errorf("initramfs lacks %s:\n%s", want, out)
		}
	}
	order, err := exec.Command("sh", "-c", `zcat "$1" | cpio -i --quiet --to-stdout lib/modules/order`, "sh", p.Initrd).Output()
	if err != nil {
		t.Fatalf("read lib/modules/order: %v", err)
	}
	mods := strings.Fields(string(order))
	pos := map[string]int{}
	for i, m := range mods {
		pos[m] = i
	}
	for _, pair := range [][2]string{{"virtio_ring", "virtio"}, {"virtio", "virtio_pci"}, {"virtio_pci", "virtio_net"}, {"failover", "net_failover"}, {"net_failover", "virtio_net"}} {
		a, okA := pos[pair[0]]
		b, okB := pos[pair[1]]
		if okA && okB && a > b || !okB {
			t.Errorf("module order %v: want %s before %s", mods, pair[0], pair[1])
		}
	}
	for _, f := range []string{p.Kernel, p.Initrd} {
		if fi, err := os.Stat(f); err != nil {
			t.Error(err)
		} else {
			t.Logf("%s: %d KiB", f, fi.Size()>>10)
		}
	}
}

// TestBootFailsFast: with no DHCP server, WaitFor reports iPXE giving up instead of waiting out
// its timeout.
func TestBootFailsFast(t *testing.T) {
	Available(t)
	lan := netns.New(t, "qlan")
	lan.Bridge(t, "br0")
	vm := Start(t, lan, Options{Name: "nodhcp", Bridge: "br0"})
	_, err := vm.WaitFor(`NETBOOTD-PAYLOAD up`, 5*time.Minute) // far beyond iPXE giving up: its failure, not the wait's end
	if err == nil || !strings.Contains(err.Error(), "boot failed") {
		t.Fatalf("WaitFor without a DHCP server: %v, want a boot failure", err)
	}
	t.Logf("%v after %.1fs", err, time.Since(vm.Started()).Seconds())
}
