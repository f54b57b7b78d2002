package profile

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strings"
)

// grubConfig is the file name a GRUB network image reads its configuration from, in its prefix
// directory ((tftp,SERVER)/grub when loaded over TFTP; Debian's grubnetx64.efi first tries
// $prefix/x86_64-efi/grub.cfg, then $prefix/grub.cfg).
const grubConfig = "grub.cfg"

// GRUBConfigName says whether name (a clean, slash-separated path) is a file a GRUB network
// image asks for, in whatever directory its prefix names, and returns the file's own name:
// "grub.cfg" or one of the "grub.cfg-…" names of its search (GRUBAsks).
func GRUBConfigName(name string) (string, bool) {
	leaf := path.Base(name)
	if leaf == grubConfig || strings.HasPrefix(leaf, grubConfig+"-") && len(leaf) > len(grubConfig)+1 {
		return leaf, true
	}
	return "", false
}

// GRUBAsks reports whether GRUB on the machine with this MAC and address asks for the config
// file leaf. Loaded from the network, GRUB tries in order (grub_net_search_config_file in
// grub-core/net/net.c; the GRUB manual's "Network" section): grub.cfg-<client UUID>,
// grub.cfg-01-<MAC in lower-case hex with dashes>, grub.cfg-<address in upper-case hex> with
// one digit fewer each time down to one, then grub.cfg.
func GRUBAsks(leaf string, mac net.HardwareAddr, ip netip.Addr) bool {
	if leaf == grubConfig {
		return true
	}
	suffix, ok := strings.CutPrefix(leaf, grubConfig+"-")
	if !ok {
		return false
	}
	// The same names pxelinux tries (its "default" is GRUB's plain grub.cfg).
	return suffix != "default" && PXELinuxAsks(suffix, mac, ip)
}

// ErrNotHTTP is an asset GRUB cannot fetch: its http module speaks plain HTTP only, and its
// tftp module reaches port 69 only.
var ErrNotHTTP = errors.New("not a plain HTTP or TFTP URL")

// GRUB renders the machine's profile as a grub.cfg: one menu entry, booted at once, with the
// same kernel, initrds and command line the iPXE script would load, fetched by GRUB from the
// same URLs: assets and http:// URLs with its http module, tftp:// URLs with its tftp module
// (the one GRUB under Secure Boot has, since it loads no module files there).
func (m Match) GRUB() (string, error) {
	args, err := m.loaderArgs("GRUB")
	if err != nil {
		return "", err
	}
	kernel, err := grubPath(m.assetURL(m.c.p.Kernel))
	if err != nil {
		return "", fmt.Errorf("profile %q: kernel: %w", m.c.p.Name, err)
	}
	initrds := make([]string, len(m.c.p.Initrds))
	for i, ref := range m.c.p.Initrds {
		if initrds[i], err = grubPath(m.assetURL(ref)); err != nil {
			return "", fmt.Errorf("profile %q: initrd: %w", m.c.p.Name, err)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# netbootd: profile %s for %s\n", m.c.p.Name, m.Data.MAC)
	b.WriteString("set default=0\nset timeout=0\n")
	fmt.Fprintf(&b, "menuentry %s {\n", grubQuote("netbootd: profile "+m.c.p.Name))
	b.WriteString("  echo " + grubQuote("netbootd: loading "+m.c.p.Kernel) + "\n")
	b.WriteString("  linux " + kernel)
	if args != "" {
		b.WriteString(" " + grubWords(args))
	}
	b.WriteString("\n")
	if len(initrds) > 0 {
		b.WriteString("  initrd " + strings.Join(initrds, " ") + "\n")
	}
	b.WriteString("}\n")
	return b.String(), nil
}

// grubPath turns an http:// or tftp:// URL into GRUB's file syntax, (PROTOCOL,HOST[:PORT])/path:
// GRUB names a network file by its device, protocol and server, then the path it asks for.
// HTTP port 80 is left out: GRUB builds that parse no port in the device name (Debian 12's
// 2.06) reach port 80 only. A TFTP path is sent as it is, unescaped.
func grubPath(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	switch {
	case p.Host == "" || p.User != nil:
	case p.Scheme == "http":
		host := p.Host
		if p.Port() == "80" {
			host = p.Hostname()
		}
		return grubQuote("(http," + host + ")" + p.EscapedPath() + querySuffix(p)), nil
	case p.Scheme == "tftp" && p.Port() == "" && p.RawQuery == "":
		return grubQuote("(tftp," + p.Host + ")" + p.Path), nil
	}
	return "", fmt.Errorf("%w: %s", ErrNotHTTP, u)
}

func querySuffix(p *url.URL) string {
	if p.RawQuery == "" {
		return ""
	}
	return "?" + p.RawQuery
}

// grubQuote makes s one GRUB script word, taken literally (GRUB's lexer follows sh: nothing
// inside single quotes is special).
func grubQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// grubWords keeps a kernel command line's words as they are while GRUB's lexer reads them:
// characters it would expand or act on ($ ; & | < > quotes, braces, backslash) are escaped;
// spaces still separate words, as they separate kernel arguments.
func grubWords(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`\$;&|<>'"{}()#`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
