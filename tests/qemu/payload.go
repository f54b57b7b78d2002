// Package qemu boots real virtual machines over the network for integration tests: a Debian kernel
// with a tiny busybox initramfs (the payload) that reports on the serial console what it got from
// DHCP, and QEMU VMs (SeaBIOS + iPXE, OVMF + EDK2's own PXE, or arm64 AAVMF: ARM64Payload) on a
// bridge in a test namespace.
//
// QEMU runs with TCG (nested KVM here has no VMX). Measured from QEMU's start to the payload's
// "up" line: direct -kernel boot ~6 s, BIOS (iPXE ROM) ~8 s, UEFI (EDK2 PXE, then ipxe.efi) ~20 s.
// Only integration tests (//go:build integration) should use it.
//
// The payload's kernel command line, as a boot script sets it:
//
//	console=ttyS0              required: the payload talks to the test over the serial console
//	initrd=<initrd image name> required under UEFI with Debian's ipxe.efi (the EFI stub loads it by name)
//	panic=-1                   a kernel panic ends QEMU at once (QEMU runs with -no-reboot)
//	netbootd.booted=<URL>      optional: the payload fetches URL after DHCP (iPXE can put ${net0/mac} in it)
//
// Console lines it prints, each starting with Marker:
//
//	NETBOOTD-PAYLOAD up mac=<mac>
//	NETBOOTD-PAYLOAD lease ip=<ip> mask=<prefix> router=<ip> server=<server id> siaddr=<ip> boot_file=<file>
//	NETBOOTD-PAYLOAD dhcp ip=<ip> mac=<mac>        (or: dhcp failed mac=<mac>)
//	NETBOOTD-PAYLOAD booted-callback ok            (or: booted-callback failed; only with netbootd.booted)
//	NETBOOTD-PAYLOAD done mac=<mac>
//
// after which it powers off, so VM.Wait returns.
package qemu

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Payload is a kernel and an initramfs to boot over the network.
type Payload struct {
	Kernel string // path of the bzImage (vmlinuz)
	Initrd string // path of the gzip'd newc cpio initramfs
}

// Marker starts every line the payload prints on the console.
const Marker = "NETBOOTD-PAYLOAD"

// CacheEnv overrides the directory payloads are cached in (default /var/cache/netbootd-test).
const CacheEnv = "NETBOOTD_TEST_CACHE"

// payloadFormat changes whenever what the builder puts in the initramfs changes other than the
// scripts below, so old caches are not reused.
const payloadFormat = "1"

// The modules the payload needs for a virtio-net NIC; their dependencies are found from the
// modules' own .modinfo, so a newer kernel package with other helper modules still works.
var payloadModules = []string{"virtio_pci", "virtio_net"}

// initScript is the payload's /init. Console lines start with Marker so tests can find them among
// firmware and kernel output.
const initScript = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /run /bin /sbin /usr/bin /usr/sbin
/bin/busybox mount -t proc proc /proc
# --install needs /proc/self/exe to find busybox.
/bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
# Keep kernel messages from splitting our lines.
echo 1 >/proc/sys/kernel/printk
say() { echo "NETBOOTD-PAYLOAD $*"; }
for m in $(cat /lib/modules/order); do
	insmod "/lib/modules/$m.ko" || say "insmod $m failed"
done
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
ip link set eth0 up || say "no eth0"
mac=$(cat /sys/class/net/eth0/address 2>/dev/null)
say "up mac=$mac"
if udhcpc -i eth0 -n -q -t 5 -T 2 -s /etc/udhcpc.script >/tmp/udhcpc.log 2>&1 && [ -s /tmp/dhcp-ip ]; then
	say "dhcp ip=$(cat /tmp/dhcp-ip) mac=$mac"
else
	say "dhcp failed mac=$mac"
	cat /tmp/udhcpc.log
fi
url=$(sed -n 's/.*netbootd\.booted=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$url" ]; then
	if wget -q -O - "$url" >/tmp/booted.out 2>&1; then
		say "booted-callback ok"
	else
		say "booted-callback failed"
		cat /tmp/booted.out
	fi
fi
say "done mac=$mac"
sync
poweroff -f
`

// udhcpcScript configures the lease udhcpc got; mask is a prefix length in busybox's udhcpc.
const udhcpcScript = `#!/bin/sh
case "$1" in
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for r in $router; do ip route add default via "$r" dev "$interface"; break; done
	echo "$ip" >/tmp/dhcp-ip
	echo "NETBOOTD-PAYLOAD lease ip=$ip mask=$mask router=$router server=$serverid siaddr=$siaddr boot_file=$boot_file" >/dev/console
	;;
esac
exit 0
`

var (
	payloadMu   sync.Mutex
	payloadMemo *Payload
)

// BuildPayload returns the test payload, building it on first use: it downloads the kernel that
// Debian's linux-image-amd64 depends on (never installing it) and takes a static busybox. The
// result is cached per kernel version and payload contents in /var/cache/netbootd-test (or
// $NETBOOTD_TEST_CACHE), so CI builds it once; concurrent builders race safely by renaming.
func BuildPayload(t testing.TB) Payload {
	t.Helper()
	payloadMu.Lock()
	defer payloadMu.Unlock()
	if payloadMemo != nil {
		return *payloadMemo
	}
	p, err := buildPayload(func(format string, args ...any) { t.Logf(format, args...) })
	if err != nil {
		t.Fatalf("build payload: %v (run scripts/deps.sh; needs apt-get, dpkg-deb and the Debian archive)", err)
	}
	payloadMemo = &p
	return p
}

// Build is BuildPayload outside a test (the demo): it builds or finds the cached payload.
func Build(logf func(string, ...any)) (Payload, error) { return buildPayload(logf) }

func cacheRoot() string {
	if d := os.Getenv(CacheEnv); d != "" {
		return d
	}
	return "/var/cache/netbootd-test"
}

func buildPayload(logf func(string, ...any)) (Payload, error) {
	kpkg, kver, err := kernelPackage()
	if err != nil {
		return Payload{}, err
	}
	bbPath, bbID, err := staticBusybox()
	if err != nil {
		return Payload{}, err
	}
	h := sha256.New()
	for _, s := range []string{payloadFormat, initScript, udhcpcScript, strings.Join(payloadModules, ","), bbID} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	root := cacheRoot()
	dir := filepath.Join(root, fmt.Sprintf("payload-%s_%s-%s", kpkg, kver, hex.EncodeToString(h.Sum(nil))[:12]))
	p := Payload{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.gz")}
	if _, err := os.Stat(p.Initrd); err == nil {
		return p, nil
	}

	logf("building payload in %s (kernel %s %s)", dir, kpkg, kver)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return Payload{}, err
	}
	// Killed builds leave directories behind, and every kernel or script change a payload: drop
	// what nobody can still be using.
	for pattern, age := range map[string]time.Duration{".build-*": time.Hour, "payload-*": 7 * 24 * time.Hour} {
		old, _ := filepath.Glob(filepath.Join(root, pattern))
		for _, o := range old {
			if fi, err := os.Stat(o); err == nil && time.Since(fi.ModTime()) > age {
				_ = os.RemoveAll(o)
			}
		}
	}
	tmp, err := os.MkdirTemp(root, ".build-")
	if err != nil {
		return Payload{}, err
	}
	defer os.RemoveAll(tmp)
	dl := filepath.Join(tmp, "dl")
	if err := os.Mkdir(dl, 0o755); err != nil {
		return Payload{}, err
	}
	if bbPath == "" {
		if bbPath, err = fetchBusybox(dl); err != nil {
			return Payload{}, err
		}
	}
	tree := filepath.Join(dl, "kernel")
	if err := aptExtract(dl, kpkg+"="+kver, tree); err != nil {
		return Payload{}, err
	}
	out := filepath.Join(tmp, "payload")
	if err := os.Mkdir(out, 0o755); err != nil {
		return Payload{}, err
	}
	if err := assemble(tree, bbPath, out); err != nil {
		return Payload{}, err
	}
	// The last step publishes the whole directory at once; whoever renames first wins.
	if err := os.Rename(out, dir); err != nil {
		if _, statErr := os.Stat(p.Initrd); statErr != nil {
			return Payload{}, fmt.Errorf("publish payload: %w", err)
		}
	}
	return p, nil
}

// kernelPackage resolves linux-image-amd64 to the real package and its candidate version.
func kernelPackage() (name, version string, err error) {
	name, err = aptLookup(func() (string, error) {
		out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
		if err != nil {
			return "", fmt.Errorf("apt-cache depends linux-image-amd64: %w", err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Fields(l)
			if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
				return f[1], nil
			}
		}
		return "", errors.New("apt-cache depends linux-image-amd64: no linux-image-* dependency")
	})
	if err != nil {
		return "", "", err
	}
	version, err = candidate(name)
	return name, version, err
}

// candidate is the version apt would download for pkg.
func candidate(pkg string) (string, error) {
	return aptLookup(func() (string, error) {
		out, err := exec.Command("apt-cache", "policy", pkg).Output()
		if err != nil {
			return "", fmt.Errorf("apt-cache policy %s: %w", pkg, err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Candidate:"); ok {
				v = strings.TrimSpace(v)
				if v == "" || v == "(none)" {
					break
				}
				return v, nil
			}
		}
		return "", fmt.Errorf("apt-cache policy %s: no candidate version", pkg)
	})
}

var aptUpdated sync.Once

// aptLookup retries a failed look-up once after `apt-get update`: a fresh machine may have no lists.
func aptLookup(f func() (string, error)) (string, error) {
	s, err := f()
	if err == nil {
		return s, nil
	}
	updated := false
	aptUpdated.Do(func() {
		updated = true
		_ = exec.Command("apt-get", "update", "-qq").Run()
	})
	if !updated {
		return "", err
	}
	return f()
}

// aptExtract downloads one .deb into dir and unpacks it into dest.
func aptExtract(dir, pkg, dest string) error {
	dl := exec.Command("apt-get", "download", "-qq", pkg)
	dl.Dir = dir
	if out, err := dl.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %w: %s", pkg, err, out)
	}
	name, _, _ := strings.Cut(pkg, "=")
	debs, _ := filepath.Glob(filepath.Join(dir, name+"_*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s: expected one .deb, found %v", pkg, debs)
	}
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], dest).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %w: %s", debs[0], err, out)
	}
	return os.Remove(debs[0])
}

// staticBusybox returns the installed busybox if it is static (busybox-static), with its hash as
// identity; otherwise an empty path and the busybox-static version to download.
func staticBusybox() (path, id string, err error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if isStatic(p) {
			data, err := os.ReadFile(p)
			if err != nil {
				return "", "", err
			}
			sum := sha256.Sum256(data)
			return p, hex.EncodeToString(sum[:]), nil
		}
	}
	v, err := candidate("busybox-static")
	if err != nil {
		return "", "", err
	}
	return "", "busybox-static_" + v, nil
}

func fetchBusybox(dir string) (string, error) {
	tree := filepath.Join(dir, "busybox")
	if err := aptExtract(dir, "busybox-static", tree); err != nil {
		return "", err
	}
	for _, p := range []string{"bin/busybox", "usr/bin/busybox"} {
		if isStatic(filepath.Join(tree, p)) {
			return filepath.Join(tree, p), nil
		}
	}
	return "", errors.New("busybox-static: no static busybox in the package")
}

// isStatic: an ELF executable without an interpreter runs alone in the initramfs.
func isStatic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// assemble writes vmlinuz and initrd.gz into out from an unpacked kernel package.
func assemble(tree, busybox, out string) error {
	kernels, _ := filepath.Glob(filepath.Join(tree, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return fmt.Errorf("kernel package: expected one boot/vmlinuz-*, found %v", kernels)
	}
	if err := copyFile(kernels[0], filepath.Join(out, "vmlinuz")); err != nil {
		return err
	}
	mods, err := resolveModules(tree, payloadModules)
	if err != nil {
		return err
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}

	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	c := newCPIOWriter(zw)
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "etc", "lib", "lib/modules", "proc", "sys", "tmp", "run"} {
		c.Dir(d, 0o755)
	}
	// The kernel opens /dev/console for init before anything mounts devtmpfs.
	c.CharDev("dev/console", 0o600, 5, 1)
	c.File("bin/busybox", 0o755, bb)
	c.Symlink("bin/sh", "busybox")
	c.File("init", 0o755, []byte(initScript))
	c.File("etc/udhcpc.script", 0o755, []byte(udhcpcScript))
	var order []string
	for _, m := range mods {
		c.File("lib/modules/"+m.name+".ko", 0o644, m.data)
		order = append(order, m.name)
	}
	c.File("lib/modules/order", 0o644, []byte(strings.Join(order, "\n")+"\n"))
	if err := c.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "initrd.gz"), buf.Bytes(), 0o644)
}

type module struct {
	name string
	data []byte // uncompressed: busybox insmod reads plain ELF only
}

// resolveModules returns want and everything they depend on, dependencies first, skipping
// modules built into the kernel.
func resolveModules(tree string, want []string) ([]module, error) {
	paths := map[string]string{}
	builtin := map[string]bool{}
	dirs, _ := filepath.Glob(filepath.Join(tree, "lib", "modules", "*"))
	if len(dirs) == 0 {
		dirs, _ = filepath.Glob(filepath.Join(tree, "usr", "lib", "modules", "*"))
	}
	if len(dirs) != 1 {
		return nil, fmt.Errorf("kernel package: expected one lib/modules/<version>, found %v", dirs)
	}
	if b, err := os.ReadFile(filepath.Join(dirs[0], "modules.builtin")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			builtin[modName(l)] = true
		}
	}
	err := filepath.WalkDir(dirs[0], func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.Contains(d.Name(), ".ko") {
			paths[modName(d.Name())] = p
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	var order []module
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(name string) error
	visit = func(name string) error {
		name = modName(name)
		switch {
		case state[name] == 2 || builtin[name]:
			return nil
		case state[name] == 1:
			return fmt.Errorf("module dependency cycle at %s", name)
		}
		state[name] = 1
		p, ok := paths[name]
		if !ok {
			return fmt.Errorf("module %s not in the kernel package", name)
		}
		data, err := readModule(p)
		if err != nil {
			return err
		}
		deps, err := modDepends(data)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		sort.Strings(deps)
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, module{name: name, data: data})
		return nil
	}
	for _, w := range want {
		if err := visit(w); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// modName normalises "kernel/drivers/net/virtio_net.ko.xz" and "virtio-net" to "virtio_net".
func modName(s string) string {
	s = filepath.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// readModule returns a module's ELF, decompressing .ko.xz / .ko.zst / .ko.gz with the tools.
func readModule(p string) ([]byte, error) {
	var tool string
	switch {
	case strings.HasSuffix(p, ".ko"):
		return os.ReadFile(p)
	case strings.HasSuffix(p, ".xz"):
		tool = "xz"
	case strings.HasSuffix(p, ".zst"):
		tool = "zstd"
	case strings.HasSuffix(p, ".gz"):
		tool = "gzip"
	default:
		return nil, fmt.Errorf("module %s: unknown compression", p)
	}
	out, err := exec.Command(tool, "-dc", p).Output()
	if err != nil {
		return nil, fmt.Errorf("%s -dc %s: %w (install xz-utils/zstd)", tool, p, err)
	}
	return out, nil
}

// modDepends reads "depends=" from a module's .modinfo section.
func modDepends(ko []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return nil, err
	}
	s := f.Section(".modinfo")
	if s == nil {
		return nil, errors.New("no .modinfo section")
	}
	data, err := s.Data()
	if err != nil {
		return nil, err
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, nil
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
