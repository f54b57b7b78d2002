package profile

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"
)

// pxelinuxDir is the directory pxelinux reads its configuration from, beside pxelinux.0.
const pxelinuxDir = "pxelinux.cfg"

// PXELinuxConfigName says whether name (a clean, slash-separated TFTP path) is a file pxelinux
// asks for in its pxelinux.cfg/ directory, wherever pxelinux.0 lies (pxelinux looks beside
// itself: debian-installer/amd64/pxelinux.cfg/…), and returns the file's own name.
func PXELinuxConfigName(name string) (string, bool) {
	dir, leaf := path.Split(name)
	if leaf == "" || path.Base(strings.TrimSuffix(dir, "/")) != pxelinuxDir {
		return "", false
	}
	return leaf, true
}

// PXELinuxAsks reports whether a pxelinux on the machine with this MAC and address asks for the
// config file leaf. pxelinux tries, in order (syslinux's doc/pxelinux.txt): the client UUID
// (option 97), "01-" and the MAC in lower-case hex with dashes, the address in upper-case hex
// with one digit fewer each time down to one, then "default".
func PXELinuxAsks(leaf string, mac net.HardwareAddr, ip netip.Addr) bool {
	switch {
	case leaf == "default":
		return true
	case len(mac) > 0 && leaf == "01-"+strings.ReplaceAll(mac.String(), ":", "-"):
		return true
	case isUUID(leaf):
		return true // pxelinux asks with the UUID the firmware reported; the address says whose
	}
	if ip.Is4() || ip.Is4In6() {
		b := ip.Unmap().As4()
		hex := fmt.Sprintf("%02X%02X%02X%02X", b[0], b[1], b[2], b[3])
		return len(leaf) >= 1 && len(leaf) <= 8 && strings.HasPrefix(hex, leaf)
	}
	return false
}

// isUUID is the 8-4-4-4-12 hex form pxelinux prints the client UUID in.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
	}
	return true
}

// ErrNotKernel is a profile pxelinux or GRUB cannot boot: an iPXE script (or a menu) rather
// than a kernel with initrds and a command line.
var ErrNotKernel = errors.New("not a kernel profile")

// loaderArgs is the kernel command line of the matched profile for a boot loader other than
// iPXE (pxelinux, GRUB), which can boot a kernel profile only.
func (m Match) loaderArgs(loader string) (string, error) {
	if m.c == nil {
		return "", errors.New("profile: no profile matched")
	}
	if m.c.p.Kernel == "" {
		return "", fmt.Errorf("profile %q: %w: %s can boot only a kernel", m.c.p.Name, ErrNotKernel, loader)
	}
	return m.KernelArgs()
}

// PXELinux renders the machine's profile as a pxelinux configuration: one entry, booted at
// once, with the same kernel, initrds and command line the iPXE script would load. Assets are
// fetched by HTTP URL, which lpxelinux.0 (and pxelinux.0 running under iPXE) can do;
// IPAPPEND 2 adds BOOTIF=01-<mac> so the kernel knows which NIC booted.
func (m Match) PXELinux() (string, error) {
	args, err := m.loaderArgs("pxelinux")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# netbootd: profile %s for %s\n", m.c.p.Name, m.Data.MAC)
	b.WriteString("DEFAULT netbootd\nPROMPT 0\nTIMEOUT 0\n")
	b.WriteString("LABEL netbootd\n")
	b.WriteString("  KERNEL " + pxelinuxURL(m.assetURL(m.c.p.Kernel)) + "\n")
	if len(m.c.p.Initrds) > 0 {
		urls := make([]string, len(m.c.p.Initrds))
		for i, ref := range m.c.p.Initrds {
			urls[i] = pxelinuxURL(m.assetURL(ref))
		}
		b.WriteString("  INITRD " + strings.Join(urls, ",") + "\n")
	}
	if args != "" {
		b.WriteString("  APPEND " + args + "\n")
	}
	b.WriteString("  IPAPPEND 2\n")
	return b.String(), nil
}

// pxelinuxURL escapes what would end a URL early in a pxelinux line: whitespace ends the
// argument and a comma separates initrds.
func pxelinuxURL(u string) string {
	return strings.NewReplacer(" ", "%20", "\t", "%09", ",", "%2C").Replace(u)
}
