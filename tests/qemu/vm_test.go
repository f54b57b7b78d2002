package qemu

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Available must name the Debian package rather than let QEMU fail obscurely later.
func TestAvailableNamesPackages(t *testing.T) {
	old := OVMFCode
	OVMFCode = "/nonexistent/OVMF_CODE.fd"
	defer func() { OVMFCode = old }()
	ft := &fakeTB{TB: t}
	func() {
		defer func() { _ = recover() }()
		Available(ft)
	}()
	if !strings.Contains(ft.msg, "ovmf (/nonexistent/OVMF_CODE.fd)") {
		t.Errorf("Available with OVMF missing said %q, want the package name ovmf", ft.msg)
	}
}

// fakeTB records Fatalf instead of ending the real test.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic("fatal")
}

// Secure Boot needs the secboot firmware with Microsoft's keys, SMM and a flash only SMM may
// write; plain UEFI has none of that.
func TestSecureBootArgs(t *testing.T) {
	vars := t.TempDir() + "/OVMF_VARS_4M.ms.fd"
	if err := os.WriteFile(vars, []byte("ms vars"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := OVMFSecureBootVars
	OVMFSecureBootVars = vars
	defer func() { OVMFSecureBootVars = old }()
	secure := []string{"q35,smm=on", "driver=cfi.pflash01,property=secure,value=on", "file=" + OVMFSecureBootCode}
	for _, fw := range []Firmware{UEFI, SecureBoot} {
		dir := t.TempDir()
		args, err := qemuArgs(Options{Name: "vm", Tap: "tap-vm", MAC: "52:54:00:00:00:01", Firmware: fw}, dir, dir+"/serial.log")
		if fw == UEFI && err != nil {
			continue // no OVMF here: plain UEFI's args are not this test's subject
		}
		if err != nil {
			t.Fatal(err)
		}
		line := strings.Join(args, " ")
		for _, want := range secure {
			if got := strings.Contains(line, want); got != (fw == SecureBoot) {
				t.Errorf("%s: %q in the command line = %v:\n%s", fw, want, got, line)
			}
		}
		if fw == SecureBoot {
			if b, err := os.ReadFile(dir + "/OVMF_VARS.fd"); err != nil || string(b) != "ms vars" {
				t.Errorf("the VM's variables are not a copy of %s: %q, %v", vars, b, err)
			}
		}
	}
}

// An arm64 VM runs qemu-system-aarch64's virt machine with AAVMF's flash (a per-VM copy of the
// variables), and a missing AAVMF names its package.
func TestAAVMFArgs(t *testing.T) {
	vars := t.TempDir() + "/vars.fd"
	if err := os.WriteFile(vars, []byte("vars"), 0o644); err != nil {
		t.Fatal(err)
	}
	oldVars := AAVMFVars
	AAVMFVars = vars
	defer func() { AAVMFVars = oldVars }()
	dir := t.TempDir()
	args, err := qemuArgs(Options{Name: "arm01", Tap: "tap-arm01", MAC: "52:54:00:00:40:01", Firmware: AAVMF, MemoryMB: 1024}, dir, dir+"/serial.log")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{"-machine virt -cpu cortex-a57", "if=pflash,format=raw,unit=0,readonly=on,file=" + AAVMFCode,
		"if=pflash,format=raw,unit=1,file=" + dir + "/AAVMF_VARS.fd", "virtio-net-pci,netdev=net0,mac=52:54:00:00:40:01,bootindex=1,romfile="} {
		if !strings.Contains(line, want) {
			t.Errorf("AAVMF arguments lack %q:\n%s", want, line)
		}
	}
	if strings.Contains(line, "q35") || strings.Contains(line, "OVMF") {
		t.Errorf("AAVMF arguments name x86 pieces:\n%s", line)
	}
	if AAVMF.binary() != "qemu-system-aarch64" || UEFI.binary() != "qemu-system-x86_64" {
		t.Errorf("binaries: AAVMF %s, UEFI %s", AAVMF.binary(), UEFI.binary())
	}

	AAVMFVars = "/nonexistent/AAVMF_VARS.fd"
	ft := &fakeTB{TB: t}
	func() {
		defer func() { _ = recover() }()
		available(ft, AAVMF)
	}()
	if !strings.Contains(ft.msg, "qemu-efi-aarch64 (/nonexistent/AAVMF_VARS.fd)") {
		t.Errorf("available(AAVMF) with its vars missing said %q, want the package name qemu-efi-aarch64", ft.msg)
	}
}
