package qemu

import (
	"crypto/sha256"
	"errors"
	"fmt"
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

// Firmware is what the VM boots with.
type Firmware int

const (
	// BIOS is SeaBIOS with QEMU's iPXE option ROM on the NIC: the first DHCP is iPXE's (user
	// class "iPXE", option 175), and it boots whatever the server points it at.
	BIOS Firmware = iota
	// UEFI is OVMF with the NIC's option ROM disabled, so EDK2's own PXE client boots (vendor
	// class PXEClient, arch 7) and fetches a network boot program over TFTP.
	UEFI
	// SecureBoot is UEFI with Secure Boot on: OVMF's secboot build, Microsoft's keys enrolled
	// (OVMFSecureBootVars), on a q35 with SMM and a secure flash, as Secure Boot needs (the
	// variables are writable from SMM only). It runs only what Microsoft's UEFI CA signed: shim.
	// Under TCG it is slow: ~2 min from QEMU's start to the payload's "done" through shim and GRUB.
	SecureBoot
)

func (f Firmware) String() string {
	switch f {
	case UEFI:
		return "UEFI"
	case SecureBoot:
		return "UEFI Secure Boot"
	}
	return "BIOS"
}

// Paths of what the VMs need, from Debian's qemu-system-x86, ovmf and ipxe-qemu.
var (
	QEMUBinary = "qemu-system-x86_64"
	OVMFCode   = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars   = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	NICROM     = "/usr/lib/ipxe/qemu/efi-virtio.rom" // QEMU's default virtio-net ROM (BIOS and EFI iPXE)

	OVMFSecureBootCode = "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd"
	OVMFSecureBootVars = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd" // Microsoft's KEK and db enrolled, Secure Boot on
)

// SerialEnv, when set, makes every VM print its serial log at cleanup, not only on failure.
const SerialEnv = "NETBOOTD_TEST_SERIAL"

// Options describe one VM.
type Options struct {
	Name     string   // names the tap and the serial log; default "vm"
	Bridge   string   // bridge in the namespace the VM's tap joins (required)
	MAC      string   // NIC MAC; default 52:54:00:xx:xx:xx derived from Name
	Firmware Firmware // BIOS (default), UEFI or SecureBoot
	MemoryMB int      // default 256 for BIOS, 512 for UEFI and SecureBoot (OVMF plus a kernel and initramfs)
	Tap      string   // tap device name; default "tap-<Name>" cut to 15 characters

	// Kernel, Initrd and Append boot a kernel directly (QEMU's -kernel), skipping the network
	// boot; the firmware still runs. For tests that only need a real Linux DHCP client.
	Kernel, Initrd, Append string

	// NoRouterAdvertisements leaves IPv6 router solicitations on Bridge unanswered (see
	// AnswerRouterSolicitations): iPXE then waits ~13 s for IPv6 before it boots.
	NoRouterAdvertisements bool

	// FailOn are serial console patterns after which the boot cannot succeed: WaitFor returns
	// an error at once instead of waiting out its timeout. Nil means DefaultFailOn; an empty
	// slice disables it. WaitFor still succeeds when its own pattern matches first.
	FailOn []string

	ExtraArgs []string // appended to QEMU's command line
}

// DefaultFailOn: SeaBIOS and OVMF giving up on every boot device, iPXE running out of NICs, and
// the kernel panicking.
var DefaultFailOn = []string{`No bootable device`, `BdsDxe: failed to`, `No more network devices`, `Kernel panic`}

// VM is a running QEMU. It is killed at test cleanup; its serial log is printed if the test failed.
type VM struct {
	opt     Options
	failOn  []*regexp.Regexp
	cmd     *exec.Cmd
	logPath string
	started time.Time
	done    chan struct{}
	waitErr error
	qemuErr *lockedBuffer
}

// Available fails the test, naming the Debian packages, when QEMU or its firmware is missing.
func Available(t testing.TB) {
	t.Helper()
	var missing []string
	if _, err := exec.LookPath(QEMUBinary); err != nil {
		missing = append(missing, "qemu-system-x86 ("+QEMUBinary+")")
	}
	for _, f := range []struct{ path, pkg string }{{OVMFCode, "ovmf"}, {OVMFVars, "ovmf"}, {OVMFSecureBootCode, "ovmf"}, {OVMFSecureBootVars, "ovmf"}, {NICROM, "ipxe-qemu"}} {
		if _, err := os.Stat(f.path); err != nil {
			missing = append(missing, f.pkg+" ("+f.path+")")
		}
	}
	if len(missing) > 0 {
		t.Fatalf("QEMU tests need: %s; run scripts/deps.sh", strings.Join(missing, ", "))
	}
}

// unsafeChars are what Name may not bring into device and file names.
var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// Start creates the VM's tap in ns, joins it to opt.Bridge and boots QEMU inside ns.
func Start(t testing.TB, ns *netns.NS, opt Options) *VM {
	t.Helper()
	Available(t)
	if opt.Name == "" {
		opt.Name = "vm"
	}
	if opt.Bridge == "" {
		t.Fatalf("qemu.Start %s: Options.Bridge is required", opt.Name)
	}
	if opt.MAC == "" {
		sum := sha256.Sum256([]byte(opt.Name))
		opt.MAC = fmt.Sprintf("52:54:00:%02x:%02x:%02x", sum[0], sum[1], sum[2])
	}
	if opt.MemoryMB == 0 {
		opt.MemoryMB = 256
		if opt.Firmware != BIOS {
			opt.MemoryMB = 512
		}
	}
	if opt.Tap == "" {
		opt.Tap = "tap-" + unsafeChars.ReplaceAllString(opt.Name, "")
	}
	if len(opt.Tap) > 15 {
		opt.Tap = opt.Tap[:15]
	}

	dir := t.TempDir()
	vm := &VM{opt: opt, logPath: filepath.Join(dir, unsafeChars.ReplaceAllString(opt.Name, "_")+".serial.log"),
		done: make(chan struct{}), qemuErr: &lockedBuffer{}}
	if opt.FailOn == nil {
		opt.FailOn = DefaultFailOn
	}
	for _, p := range opt.FailOn {
		vm.failOn = append(vm.failOn, compilePattern(p))
	}
	args, err := qemuArgs(opt, dir, vm.logPath)
	if err != nil {
		t.Fatalf("qemu.Start %s: %v", opt.Name, err)
	}

	if !opt.NoRouterAdvertisements {
		AnswerRouterSolicitations(t, ns, opt.Bridge)
	}
	ns.Run(t, "ip", "tuntap", "add", "dev", opt.Tap, "mode", "tap")
	ns.Run(t, "ip", "link", "set", opt.Tap, "master", opt.Bridge)
	ns.Run(t, "ip", "link", "set", opt.Tap, "up")

	vm.cmd = ns.Cmd(t, QEMUBinary, args...)
	vm.cmd.Stdout = vm.qemuErr
	vm.cmd.Stderr = vm.qemuErr
	vm.started = time.Now()
	if err := vm.cmd.Start(); err != nil {
		t.Fatalf("qemu.Start %s: %v", opt.Name, err)
	}
	go func() { vm.waitErr = vm.cmd.Wait(); close(vm.done) }()
	t.Cleanup(func() {
		vm.Kill()
		_, _ = ns.Exec("ip", "link", "del", opt.Tap)
		if t.Failed() || os.Getenv(SerialEnv) != "" {
			t.Logf("VM %s (%s, %s) serial log:\n%s", opt.Name, opt.Firmware, opt.MAC, vm.Serial())
			if s := vm.qemuErr.String(); s != "" {
				t.Logf("VM %s QEMU output:\n%s", opt.Name, s)
			}
		}
	})
	return vm
}

// Args is QEMU's command line for opt, outside a test (the demo): dir holds the VM's files
// (OVMF variables, the serial-port setting), logPath receives the serial console. The tap
// opt.Tap must exist.
func Args(opt Options, dir, logPath string) ([]string, error) { return qemuArgs(opt, dir, logPath) }

func qemuArgs(opt Options, dir, logPath string) ([]string, error) {
	args := []string{
		"-name", opt.Name,
		"-accel", "tcg", // nested KVM here lacks VMX: TCG is faster and OVMF works under it
		"-machine", "q35",
		"-smp", "1",
		"-m", fmt.Sprint(opt.MemoryMB),
		"-nodefaults", "-display", "none", "-vga", "none",
		"-serial", "file:" + logPath,
		"-monitor", "none",
		"-no-reboot", // poweroff, a triple fault or a reboot ends the process
		// vnet_hdr=off: no checksum offload towards the host, so raw sockets and XDP on the
		// bridge see finished checksums.
		"-netdev", "tap,id=net0,ifname=" + opt.Tap + ",script=no,downscript=no,vnet_hdr=off",
	}
	nic := "virtio-net-pci,netdev=net0,mac=" + opt.MAC
	if opt.Kernel == "" {
		nic += ",bootindex=1"
	}
	switch opt.Firmware {
	case BIOS:
		// SeaBIOS copies its and the option ROMs' text output to the serial port only when told.
		port := filepath.Join(dir, "sercon-port")
		if err := os.WriteFile(port, []byte{0xf8, 0x03}, 0o644); err != nil {
			return nil, err
		}
		// QEMU warns that the name lacks "opt/"; SeaBIOS reads exactly this name.
		args = append(args, "-fw_cfg", "name=etc/sercon-port,file="+port)
		// The NIC keeps QEMU's default ROM (NICROM). Naming any ROM in romfile=, even that one,
		// leaves SeaBIOS with no network boot entry ("No bootable device") on QEMU 7.2.
	case UEFI, SecureBoot:
		code, varsTemplate := OVMFCode, OVMFVars
		if opt.Firmware == SecureBoot {
			code, varsTemplate = OVMFSecureBootCode, OVMFSecureBootVars
			// The later -machine adds SMM to q35; only SMM may write the secure flash.
			args = append(args, "-machine", "q35,smm=on", "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		vars := filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(varsTemplate, vars); err != nil {
			return nil, fmt.Errorf("copy OVMF vars: %w", err)
		}
		args = append(args,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
		nic += ",romfile=" // no iPXE ROM: EDK2's own PXE boots
	default:
		return nil, fmt.Errorf("unknown firmware %d", opt.Firmware)
	}
	args = append(args, "-device", nic)
	if opt.Kernel != "" {
		args = append(args, "-kernel", opt.Kernel, "-append", opt.Append)
		if opt.Initrd != "" {
			args = append(args, "-initrd", opt.Initrd)
		}
	} else {
		args = append(args, "-boot", "strict=on")
	}
	return append(args, opt.ExtraArgs...), nil
}

// compilePattern takes a regexp, or a plain substring when the pattern is not a valid regexp.
func compilePattern(p string) *regexp.Regexp {
	re, err := regexp.Compile(p)
	if err != nil {
		re = regexp.MustCompile(regexp.QuoteMeta(p))
	}
	return re
}

// MAC is the NIC's MAC address.
func (vm *VM) MAC() string { return vm.opt.MAC }

// Tap is the VM's tap device in the namespace.
func (vm *VM) Tap() string { return vm.opt.Tap }

// LogPath is the raw serial log file.
func (vm *VM) LogPath() string { return vm.logPath }

// Started is when QEMU was started, to measure boot times.
func (vm *VM) Started() time.Time { return vm.started }

// ansi matches terminal escape sequences, which EDK2 and iPXE write around their text.
var ansi = regexp.MustCompile(`\x1b(\[[0-9;?=]*[A-Za-z]|[()][0-9A-Za-z]|[A-Za-z=>])`)

// Serial is the serial console so far, with carriage returns and escape sequences removed.
func (vm *VM) Serial() string {
	b, err := os.ReadFile(vm.logPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("(reading %s: %v)", vm.logPath, err)
	}
	s := ansi.ReplaceAllString(string(b), "")
	s = strings.ReplaceAll(s, "\b \b", "") // iPXE's countdowns
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\r", "\n")
}

// WaitFor polls the serial console until a line matches pattern (a regexp; a pattern that does
// not compile is taken as a plain substring) and returns that line. It fails early if QEMU exits.
func (vm *VM) WaitFor(pattern string, timeout time.Duration) (string, error) {
	re := compilePattern(pattern)
	deadline := time.Now().Add(timeout)
	for {
		exited := false
		select {
		case <-vm.done:
			exited = true
		default:
		}
		s := vm.Serial()
		if !exited { // a line still being written is not matched until it is complete
			if i := strings.LastIndexByte(s, '\n'); i >= 0 {
				s = s[:i]
			} else {
				s = ""
			}
		}
		lines := strings.Split(s, "\n")
		for _, l := range lines {
			if re.MatchString(l) {
				return l, nil
			}
		}
		for _, l := range lines {
			for _, f := range vm.failOn {
				if f.MatchString(l) {
					return "", fmt.Errorf("VM %s: boot failed (%q) before %q appeared", vm.opt.Name, l, pattern)
				}
			}
		}
		if exited {
			return "", fmt.Errorf("VM %s: QEMU exited (%v) before %q appeared", vm.opt.Name, vm.exitStatus(), pattern)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("VM %s: %q did not appear within %v", vm.opt.Name, pattern, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Wait waits for QEMU to exit (the payload powers off) and returns an error if it exited with
// failure or is still running after timeout.
func (vm *VM) Wait(timeout time.Duration) error {
	select {
	case <-vm.done:
		if vm.waitErr != nil {
			return fmt.Errorf("VM %s: QEMU: %v: %s", vm.opt.Name, vm.waitErr, vm.qemuErr.String())
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("VM %s: still running after %v", vm.opt.Name, timeout)
	}
}

// Kill stops QEMU now; cleanup does it anyway.
func (vm *VM) Kill() {
	select {
	case <-vm.done:
	default:
		_ = vm.cmd.Process.Kill()
		<-vm.done
	}
}

func (vm *VM) exitStatus() string {
	if vm.waitErr != nil {
		return vm.waitErr.Error()
	}
	return "status 0"
}

type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
