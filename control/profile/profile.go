// Package profile decides which profile a machine boots and renders what its templates say: the
// kernel command line, the iPXE script and the configs the booted system fetches. A Resolver is
// built once from a validated configuration and never changes; a reload builds a new one.
package profile

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"slices"
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

// Config is what a Resolver is built from.
type Config struct {
	// Conf is the validated configuration: its profiles, groups, classes and reservations.
	Conf *config.Config
	// BaseURL is how machines reach the HTTP server, e.g. "http://10.10.0.1:8080"
	// (config.Config.BaseURL).
	BaseURL string
}

// New builds a resolver.
func New(cfg Config) (*Resolver, error) {
	conf := cfg.Conf
	if conf == nil {
		return nil, errors.New("profile: no configuration")
	}
	baseURL := strings.TrimRight(cfg.BaseURL, "/")
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("profile: base URL %q: want http://host[:port]", baseURL)
	}
	r := &Resolver{
		baseURL:      baseURL,
		assetsURL:    baseURL + "/assets",
		serverIP:     u.Hostname(),
		profiles:     make(map[string]*compiled, len(conf.Profiles)),
		reservations: make(map[string]*config.Reservation, len(conf.Reservations)),
		reservedAt:   make(map[netip.Addr]net.HardwareAddr, len(conf.Reservations)),
	}
	if conf.Interface.ServerIP.IsValid() {
		r.serverIP = conf.Interface.ServerIP.String()
	}
	for i := range conf.Profiles {
		c, err := compile(conf.Profiles[i])
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
	for i := range conf.Reservations {
		res := conf.Reservations[i]
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
	for _, g := range conf.Groups {
		p := r.profiles[g.Profile]
		if p == nil {
			return nil, fmt.Errorf("profile: group %q names profile %q, which does not exist", g.Name, g.Profile)
		}
		g.Selector.MAC = append(config.MAC(nil), g.Selector.MAC...)
		g.Selector.Labels = cloneMap(g.Selector.Labels)
		g.Selector.Classes = slices.Clone(g.Selector.Classes)
		r.groups = append(r.groups, group{g: g, p: p})
	}
	for _, cl := range conf.Classes {
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

// BaseURL is the prefix of every URL the scripts and configs name (Config.BaseURL).
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
