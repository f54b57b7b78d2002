package profile

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"text/template"
)

// KernelArgs renders the profile's kernel command line, on one line.
func (m Match) KernelArgs() (string, error) {
	if m.c == nil {
		return "", errors.New("profile: no profile matched")
	}
	s, err := m.render("args", m.c.args)
	if err != nil {
		return "", err
	}
	// A newline would end the iPXE kernel line and run the rest as commands.
	return strings.TrimSpace(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)), nil
}

// Script renders the machine's whole iPXE script: the profile's own script, or kernel, initrds
// and boot generated from its kernel, initrds and args.
func (m Match) Script() (string, error) {
	if m.c == nil {
		return "", errors.New("profile: no profile matched")
	}
	if m.c.p.Menu != nil {
		return m.menuScript()
	}
	if m.c.script != nil {
		s, err := m.render("script", m.c.script)
		if err != nil {
			return "", err
		}
		if trimmed := strings.TrimLeft(s, " \t\r\n"); strings.HasPrefix(trimmed, "#!ipxe") {
			s = trimmed // iPXE only recognises the signature at the very start
		} else {
			s = "#!ipxe\n" + s
		}
		if !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		return s, nil
	}
	args, err := m.KernelArgs()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	b.WriteString("kernel " + m.assetURL(m.c.p.Kernel))
	// The EFI stub of Linux finds each initrd by the name given on its command line (iPXE
	// exposes loaded images as files); BIOS iPXE ignores these.
	for _, name := range m.c.initrdNames {
		b.WriteString(" initrd=" + name)
	}
	if args != "" {
		b.WriteString(" " + args)
	}
	b.WriteString("\n")
	for i, ref := range m.c.p.Initrds {
		fmt.Fprintf(&b, "initrd --name %s %s\n", m.c.initrdNames[i], m.assetURL(ref))
	}
	b.WriteString("boot\n")
	return b.String(), nil
}

// Config renders one of the configs a booted system fetches: kind is "user-data", "meta-data"
// or "ignition". ok is false when the profile has none.
func (m Match) Config(kind string) (body string, ok bool, err error) {
	if m.c == nil {
		return "", false, errors.New("profile: no profile matched")
	}
	var t *template.Template
	switch kind {
	case UserData:
		t = m.c.user
	case MetaData:
		t = m.c.meta
	case Ignition:
		t = m.c.ignition
	default:
		return "", false, fmt.Errorf("profile: unknown config kind %q", kind)
	}
	if t == nil {
		return "", false, nil
	}
	body, err = m.render(kind, t)
	if err != nil {
		return "", false, err
	}
	return body, true, nil
}

func (m Match) render(field string, t *template.Template) (string, error) {
	if t == nil {
		return "", nil
	}
	var b strings.Builder
	if err := t.Execute(&b, m.Data); err != nil {
		return "", fmt.Errorf("profile %q: %s: %w", m.c.p.Name, field, err)
	}
	return b.String(), nil
}

// assetURL is ref itself when it is a URL, else the asset's URL on this server.
func (m Match) assetURL(ref string) string {
	if isURL(ref) {
		return ref
	}
	parts := strings.Split(strings.TrimPrefix(ref, "/"), "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return m.Data.AssetsURL + "/" + strings.Join(parts, "/")
}

func isURL(ref string) bool {
	return strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") || strings.HasPrefix(ref, "tftp://")
}

// initrdNames gives each initrd a distinct name from its base name, usable on a kernel command
// line and in iPXE's --name.
func initrdNames(refs []string) []string {
	names := make([]string, len(refs))
	used := map[string]bool{}
	for i, ref := range refs {
		p := ref
		if isURL(ref) {
			if u, err := url.Parse(ref); err == nil {
				p = u.Path
			}
		}
		base := "initrd"
		if b := path.Base(p); b != "/" && b != "." {
			base = sanitizeName(b)
		}
		name := base
		for n := 2; used[name]; n++ {
			ext := path.Ext(base)
			name = strings.TrimSuffix(base, ext) + "-" + strconv.Itoa(n) + ext
		}
		used[name] = true
		names[i] = name
	}
	return names
}

func sanitizeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_', c == '+':
		default:
			b[i] = '_'
		}
	}
	s = strings.Trim(string(b), ".")
	if s == "" {
		return "initrd"
	}
	return s
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
