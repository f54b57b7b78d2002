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
