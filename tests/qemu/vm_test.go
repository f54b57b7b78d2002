package qemu

import (
	"fmt"
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
