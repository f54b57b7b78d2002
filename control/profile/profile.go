// Package profile decides which profile a machine boots and renders what its templates say: the
// kernel command line, the iPXE script and the configs the booted system fetches. A Resolver is
// built once from a validated configuration and never changes; a reload builds a new one.
package profile

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/netbootd/netbootd/control/config"
)

// Facts are what a machine says about itself (iPXE's ${netX/mac}, ${uuid}, ${buildarch},
// ${platform}, ${serial}, ${hostname}) plus what the server sees (its address).
type Facts struct {
	MAC      net.HardwareAddr
	UUID     string
	Arch     string
	Platform string
	Serial   string
	Hostname string
	IP       netip.Addr
	// Classes are the client classes DHCP put the machine in when it last answered it.
	Classes []string
}

// Data is what profile templates see.
type Data struct {
	MAC       string // aa:bb:cc:dd:ee:ff
	MACDash   string // aa-bb-cc-dd-ee-ff
	IP        string
	Hostname  string // the reservation's, else what iPXE reported
	UUID      string
	Arch      string
	Platform  string
	Serial    string
	Labels    map[string]string
	Profile   string
	ServerIP  string
	BaseURL   string // e.g. http://10.10.0.1:8080
	AssetsURL string // BaseURL + "/assets"
	ConfigURL string // BaseURL + "/configs/" + MACDash
	BootedURL string // BaseURL + "/booted/" + MACDash
}

// Config kinds served to booted systems.
const (
	UserData = "user-data"
	MetaData = "meta-data"
	Ignition = "ignition"
)

// Asset kinds, as AssetKind reports them.
const (
	AssetKernel = "kernel"
	AssetInitrd = "initrd"
)

// Match is the profile a machine boots, why, and the data its templates render with.
type Match struct {
	Profile *config.Profile // the Resolver's copy: do not modify
	Reason  string
	Data    Data

	c *compiled
}

// compiled is a profile with its templates parsed once.
type compiled struct {
	p                                  config.Profile
	args, script, user, meta, ignition *template.Template
	initrdNames                        []string
	items                              []*compiled // a menu's profile items, by index; nil for other items
}

type group struct {
	g config.Group
	p *compiled
}

// Resolver maps machine facts to profiles. It is immutable after New and safe for concurrent use.
type Resolver struct {
	baseURL, assetsURL, serverIP string
	profiles                     map[string]*compiled
	reservations                 map[string]*config.Reservation
	reservedAt                   map[netip.Addr]net.HardwareAddr // reservations' ip → MAC
	groups                       []group
	classProfiles                []classProfile // in the file's order
}

// classProfile is a client class that chooses its machines' profile.
type classProfile struct {
	class string
	p     *compiled
}

// New builds a resolver from a validated configuration. baseURL is how machines reach the HTTP
// server, e.g. "http://10.10.0.1:8080".
func New(cfg *config.Config, baseURL string) (*Resolver, error) {
	if cfg == nil {
		return nil, errors.New("profile: no configuration")
	}
	baseURL = strings.TrimRight(baseURL, "/")
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("profile: base URL %q: want http://host[:port]", baseURL)
	}
	r := &Resolver{
		baseURL:      baseURL,
		assetsURL:    baseURL + "/assets",
		serverIP:     u.Hostname(),
		profiles:     make(map[string]*compiled, len(cfg.Profiles)),
		reservations: make(map[string]*config.Reservation, len(cfg.Reservations)),
		reservedAt:   make(map[netip.Addr]net.HardwareAddr, len(cfg.Reservations)),
	}
	if cfg.Interface.ServerIP.IsValid() {
		r.serverIP = cfg.Interface.ServerIP.String()
	}
	for i := range cfg.Profiles {
		c, err := compile(cfg.Profiles[i])
		if err != nil {
			return nil, err
		}
		if _, dup := r.profiles[c.p.Name]; dup {
			return nil, fmt.Errorf("profile: %q is defined twice", c.p.Name)
		}
		r.profiles[c.p.Name] = c
	}
	for _, c := range r.profiles {
		if c.p.Menu != nil {
			if c.items, err = menuItems(c.p, r.profiles); err != nil {
				return nil, err
			}
		}
	}
	for i := range cfg.Reservations {
		res := cfg.Reservations[i]
		if res.Profile != "" && r.profiles[res.Profile] == nil {
			return nil, fmt.Errorf("profile: reservation %s names profile %q, which does not exist", res.MAC, res.Profile)
		}
		res.MAC = append(config.MAC(nil), res.MAC...)
		res.Labels = cloneMap(res.Labels)
		r.reservations[res.MAC.String()] = &res
		if res.IP.IsValid() {
			r.reservedAt[res.IP] = net.HardwareAddr(res.MAC)
		}
	}
	for _, g := range cfg.Groups {
		p := r.profiles[g.Profile]
		if p == nil {
			return nil, fmt.Errorf("profile: group %q names profile %q, which does not exist", g.Name, g.Profile)
		}
		g.Selector.MAC = append(config.MAC(nil), g.Selector.MAC...)
		g.Selector.Labels = cloneMap(g.Selector.Labels)
		g.Selector.Classes = slices.Clone(g.Selector.Classes)
		r.groups = append(r.groups, group{g: g, p: p})
	}
	for _, cl := range cfg.Classes {
		if cl.Profile == "" {
			continue
		}
		p := r.profiles[cl.Profile]
		if p == nil {
			return nil, fmt.Errorf("profile: class %q names profile %q, which does not exist", cl.Name, cl.Profile)
		}
		r.classProfiles = append(r.classProfiles, classProfile{class: cl.Name, p: p})
	}
	return r, nil
}

func compile(p config.Profile) (*compiled, error) {
	p.Initrds = append([]string(nil), p.Initrds...)
	if p.Menu != nil {
		menu := *p.Menu
		menu.Items = append([]config.MenuItem(nil), menu.Items...)
		p.Menu = &menu
	}
	c := &compiled{p: p, initrdNames: initrdNames(p.Initrds)}
	for _, t := range []struct {
		field string
		text  string
		dst   **template.Template
	}{
		{"args", p.Args, &c.args}, {"script", p.Script, &c.script}, {"user_data", p.UserData, &c.user},
		{"meta_data", p.MetaData, &c.meta}, {"ignition", p.Ignition, &c.ignition},
	} {
		if t.text == "" {
			continue
		}
		tmpl, err := template.New(p.Name + "." + t.field).Funcs(config.TemplateFuncs).Option("missingkey=error").Parse(t.text)
		if err != nil {
			return nil, fmt.Errorf("profile %q: %s: %w", p.Name, t.field, err)
		}
		*t.dst = tmpl
	}
	return c, nil
}

// Resolve says which profile the machine boots. A reservation naming a profile wins; then the
// first class in the file that the machine belongs to and that names a profile; otherwise
// the matching group with the most selector fields, the first in the file on a tie. Without a
// match it returns false and a Match whose Reason says why. A nil Resolver matches nothing.
func (r *Resolver) Resolve(f Facts) (Match, bool) {
	if r == nil {
		return Match{Reason: "no profiles configured"}, false
	}
	var res *config.Reservation
	if len(f.MAC) > 0 {
		res = r.reservations[f.MAC.String()]
	}
	hostname, ip := f.Hostname, f.IP
	labels := map[string]string{}
	if res != nil {
		if res.Hostname != "" {
			hostname = res.Hostname
		}
		if res.IP.IsValid() {
			ip = res.IP
		}
		for k, v := range res.Labels {
			labels[k] = v
		}
	}

	var c *compiled
	var reason string
	if res != nil && res.Profile != "" {
		c = r.profiles[res.Profile]
		reason = fmt.Sprintf("reservation %s names profile %q", res.MAC, res.Profile)
	} else if cp, ok := r.classProfile(f.Classes); ok {
		c = cp.p
		reason = fmt.Sprintf("class %q names profile %q", cp.class, cp.p.p.Name)
	} else {
		var matching []group
		for _, g := range r.groups {
			if selects(g.g.Selector, f, hostname, labels) {
				matching = append(matching, g)
			}
		}
		if len(matching) == 0 {
			return Match{Reason: "no group matches and no default group: " + describeFacts(f, hostname, res)}, false
		}
		// Stable: among equally specific groups the earlier one stays first.
		sort.SliceStable(matching, func(i, j int) bool {
			return matching[i].g.Selector.Size() > matching[j].g.Selector.Size()
		})
		best := matching[0]
		c = best.p
		reason = fmt.Sprintf("group %q (%s)", best.g.Name, describeSelector(best.g.Selector))
		switch n := len(matching) - 1; n {
		case 0:
			reason += ", the only matching group"
		case 1:
			reason += " over 1 other matching group"
		default:
			reason += fmt.Sprintf(" over %d other matching groups", n)
		}
		if len(matching) > 1 && matching[1].g.Selector.Size() == best.g.Selector.Size() {
			reason += fmt.Sprintf(" (tied with group %q: the first in the file wins)", matching[1].g.Name)
		}
	}

	mac := ""
	if len(f.MAC) > 0 {
		mac = f.MAC.String()
	}
	macDash := strings.ReplaceAll(mac, ":", "-")
	d := Data{
		MAC: mac, MACDash: macDash, Hostname: hostname,
		UUID: f.UUID, Arch: f.Arch, Platform: f.Platform, Serial: f.Serial,
		Labels: labels, Profile: c.p.Name, ServerIP: r.serverIP,
		BaseURL: r.baseURL, AssetsURL: r.assetsURL,
		ConfigURL: r.baseURL + "/configs/" + macDash,
		BootedURL: r.baseURL + "/booted/" + macDash,
	}
	if ip.IsValid() {
		d.IP = ip.Unmap().String()
	}
	return Match{Profile: &c.p, Reason: reason, Data: d, c: c}, true
}

// Reserved reports whether mac has a reservation, and the address it reserves (invalid if none).
func (r *Resolver) Reserved(mac net.HardwareAddr) (netip.Addr, bool) {
	if r == nil {
		return netip.Addr{}, false
	}
	res, ok := r.reservations[mac.String()]
	if !ok {
		return netip.Addr{}, false
	}
	return res.IP, true
}

// ReservedAt is the MAC whose reservation has ip, if any.
func (r *Resolver) ReservedAt(ip netip.Addr) (net.HardwareAddr, bool) {
	if r == nil {
		return nil, false
	}
	mac, ok := r.reservedAt[ip.Unmap()]
	return mac, ok
}

// BaseURL is the prefix of every URL the scripts and configs name (New's baseURL).
func (r *Resolver) BaseURL() string {
	if r == nil {
		return ""
	}
	return r.baseURL
}

// AssetKind says whether asset (a path under the assets directory) is the named profile's kernel
// or one of its initrds: "kernel", "initrd" or "".
func (r *Resolver) AssetKind(profile, asset string) string {
	if r == nil {
		return ""
	}
	c := r.profiles[profile]
	if c == nil {
		return ""
	}
	for _, item := range c.items { // a menu: whichever item's profile was chosen
		if item != nil {
			if kind := r.AssetKind(item.p.Name, asset); kind != "" {
				return kind
			}
		}
	}
	asset = path.Clean(strings.TrimPrefix(asset, "/"))
	if !isURL(c.p.Kernel) && c.p.Kernel != "" && path.Clean(c.p.Kernel) == asset {
		return AssetKernel
	}
	for _, ref := range c.p.Initrds {
		if !isURL(ref) && path.Clean(ref) == asset {
			return AssetInitrd
		}
	}
	return ""
}

// classProfile is the first class in the file, among the machine's, that names a profile.
func (r *Resolver) classProfile(classes []string) (classProfile, bool) {
	for _, cp := range r.classProfiles {
		if slices.Contains(classes, cp.class) {
			return cp, true
		}
	}
	return classProfile{}, false
}

func selects(s config.Selector, f Facts, hostname string, labels map[string]string) bool {
	if len(s.MAC) > 0 && !bytes.Equal(s.MAC, f.MAC) {
		return false
	}
	if s.UUID != "" && !strings.EqualFold(s.UUID, f.UUID) {
		return false
	}
	if s.Arch != "" && s.Arch != f.Arch {
		return false
	}
	if s.Platform != "" && s.Platform != f.Platform {
		return false
	}
	if s.Hostname != "" && s.Hostname != hostname {
		return false
	}
	for k, v := range s.Labels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, c := range s.Classes {
		if !slices.Contains(f.Classes, c) {
			return false
		}
	}
	return true
}

func describeSelector(s config.Selector) string {
	var parts []string
	if len(s.MAC) > 0 {
		parts = append(parts, "mac "+s.MAC.String())
	}
	for _, kv := range [][2]string{{"uuid", s.UUID}, {"arch", s.Arch}, {"platform", s.Platform}, {"hostname", s.Hostname}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	if len(s.Labels) > 0 {
		parts = append(parts, "labels "+joinLabels(s.Labels))
	}
	if len(s.Classes) > 0 {
		parts = append(parts, "classes "+strings.Join(s.Classes, ","))
	}
	if len(parts) == 0 {
		return "empty selector: every machine"
	}
	n := s.Size()
	plural := "s"
	if n == 1 {
		plural = ""
	}
	return fmt.Sprintf("%s; %d selector field%s", strings.Join(parts, ", "), n, plural)
}

func describeFacts(f Facts, hostname string, res *config.Reservation) string {
	var parts []string
	if len(f.MAC) > 0 {
		parts = append(parts, "mac "+f.MAC.String())
	}
	for _, kv := range [][2]string{{"uuid", f.UUID}, {"arch", f.Arch}, {"platform", f.Platform}, {"hostname", hostname}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	if len(f.Classes) > 0 {
		parts = append(parts, "classes "+strings.Join(f.Classes, ","))
	}
	switch {
	case res == nil:
		parts = append(parts, "no reservation")
	case len(res.Labels) > 0:
		parts = append(parts, "labels "+joinLabels(res.Labels))
	default:
		parts = append(parts, "no labels")
	}
	return strings.Join(parts, ", ")
}

func joinLabels(m map[string]string) string {
	kv := make([]string, 0, len(m))
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

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
