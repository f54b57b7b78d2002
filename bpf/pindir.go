package bpf

import (
	"path/filepath"
	"strings"
)

// PinDir is the directory iface's program, link and maps are pinned in under pinRoot ("" =
// DefaultPinRoot). bpffs refuses a '.' in a name, so a VLAN sub-interface eth0.100 pins as
// eth0:100: ':' is never part of an interface name, so no two interfaces share a directory.
func PinDir(pinRoot, iface string) string {
	if pinRoot == "" {
		pinRoot = DefaultPinRoot
	}
	return filepath.Join(pinRoot, strings.ReplaceAll(iface, ".", ":"))
}
