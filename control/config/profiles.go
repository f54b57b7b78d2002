package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"
)

// Profile is what a machine boots: a kernel, its initrds and command line, or a whole iPXE
// script; plus the configs the booted system fetches. Args, Script, UserData, MetaData and
// Ignition are Go templates over the machine's facts (see control/profile).
type Profile struct {
	Name     string   `yaml:"name"`
	Kernel   string   `yaml:"kernel"`    // an asset name (served under /assets/), an http(s) URL or a tftp URL
	Initrds  []string `yaml:"initrds"`   // asset names or URLs, loaded in order
	Args     string   `yaml:"args"`      // kernel command line
	Script   string   `yaml:"script"`    // an iPXE script instead of kernel/initrds/args (menus, exit, sanboot)
	UserData string   `yaml:"user_data"` // cloud-init user-data, served at /configs/user-data
	MetaData string   `yaml:"meta_data"` // cloud-init meta-data, served at /configs/meta-data
	Ignition string   `yaml:"ignition"`  // Ignition JSON, served at /configs/ignition
	Menu     *Menu    `yaml:"menu"`      // an iPXE menu instead of kernel or script
	Line     int      `yaml:"-"`
}

// Menu is a profile that shows an iPXE menu: each item boots another profile, chains a URL
// (netboot.xyz, or a local mirror of it under the assets) or boots from the local disk. After
// Timeout with no key pressed the Default item boots.
type Menu struct {
	Title   string     `yaml:"title"`
	Default string     `yaml:"default"` // an item's name; "" = the first item
	Timeout Duration   `yaml:"timeout"` // 0 = wait for a choice
	Items   []MenuItem `yaml:"items"`
}

// MenuItem is one entry of a Menu: exactly one of Profile, Chain or LocalDisk.
type MenuItem struct {
	Name      string `yaml:"name"`       // the item's key in the script; default: its profile's name
	Label     string `yaml:"label"`      // the text shown; default: its name
	Profile   string `yaml:"profile"`    // boot this (kernel or script) profile
	Chain     string `yaml:"chain"`      // chain this iPXE script: an http(s) URL or an asset name
	LocalDisk bool   `yaml:"local_disk"` // boot the first local disk (sanboot drive 0x80), else exit to the firmware
	Line      int    `yaml:"-"`
}

// Group selects a profile for the machines its selector matches. The matching group with the
// most selector fields wins (labels count one each); on a tie the first in the file wins. A
// group with an empty selector matches every machine: the default.
type Group struct {
	Name     string   `yaml:"name"`
	Profile  string   `yaml:"profile"`
	Selector Selector `yaml:"selector"`
	Line     int      `yaml:"-"`
}

// Selector is the machine facts a group matches; empty fields match anything.
type Selector struct {
	MAC      MAC               `yaml:"mac"`
	UUID     string            `yaml:"uuid"`     // SMBIOS UUID, as iPXE's ${uuid} prints it
	Arch     string            `yaml:"arch"`     // iPXE's ${buildarch}: i386, x86_64, arm64
	Platform string            `yaml:"platform"` // iPXE's ${platform}: pcbios, efi
	Hostname string            `yaml:"hostname"` // the reservation's host name
	Labels   map[string]string `yaml:"labels"`   // all must equal the reservation's labels
	// Classes are client classes the machine must all belong to, as DHCP last classified it.
	Classes []string `yaml:"classes"`
}

// Size is the number of fields the selector constrains: its specificity.
func (s Selector) Size() int {
	n := len(s.Labels) + len(s.Classes)
	for _, set := range []bool{len(s.MAC) > 0, s.UUID != "", s.Arch != "", s.Platform != "", s.Hostname != ""} {
		if set {
			n++
		}
	}
	return n
}

// key is a canonical form, to find two groups with the same selector.
func (s Selector) key() string {
	labels := make([]string, 0, len(s.Labels))
	for k, v := range s.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	classes := slices.Clone(s.Classes)
	slices.Sort(classes)
	classes = slices.Compact(classes)
	return strings.Join([]string{s.MAC.String(), strings.ToLower(s.UUID), s.Arch, s.Platform, s.Hostname, strings.Join(labels, ","), strings.Join(classes, ",")}, "|")
}

// ProfileByName returns the named profile, or nil.
func (c *Config) ProfileByName(name string) *Profile {
	for i := range c.Profiles {
		if c.Profiles[i].Name == name {
			return &c.Profiles[i]
		}
	}
	return nil
}

// TemplateFuncs are the functions profile templates may call. Execution supplies them; Validate
// parses with the same names so a template that parses here runs there.
var TemplateFuncs = template.FuncMap{
	"join":  strings.Join,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"quote": func(s string) string { return fmt.Sprintf("%q", s) },
}

func (c *Config) validateProfiles(bad report) {
	names := map[string]int{}
	for i := range c.Profiles {
		p := &c.Profiles[i]
		f := fmt.Sprintf("profiles[%d]", i)
		switch {
		case p.Name == "":
			bad(p.Line, f+".name", "missing")
		case strings.ContainsAny(p.Name, "/ \t\x00"):
			bad(p.Line, f+".name", "%q: no slashes or spaces", p.Name)
		default:
			if j, dup := names[p.Name]; dup {
				bad(p.Line, f+".name", "%q is also profiles[%d]", p.Name, j)
			}
			names[p.Name] = i
		}
		kinds := 0
		for _, set := range []bool{p.Kernel != "", p.Script != "", p.Menu != nil} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			bad(p.Line, f, "set one of kernel (with initrds and args), script or menu")
		}
		if p.Menu != nil {
			c.validateMenu(p.Menu, p.Line, f+".menu", bad)
			if len(p.Initrds) > 0 || p.Args != "" {
				bad(p.Line, f, "initrds and args belong with kernel, not with menu")
			}
		}
		if p.Script != "" && (len(p.Initrds) > 0 || p.Args != "") {
			bad(p.Line, f, "initrds and args belong with kernel, not with script")
		}
		for j, ref := range append([]string{p.Kernel}, p.Initrds...) {
			field := f + ".kernel"
			if j > 0 {
				field = fmt.Sprintf("%s.initrds[%d]", f, j-1)
			}
			if err := checkAssetRef(ref); err != nil {
				bad(p.Line, field, "%v", err)
			}
		}
		for field, text := range map[string]string{"args": p.Args, "script": p.Script,
			"user_data": p.UserData, "meta_data": p.MetaData, "ignition": p.Ignition} {
			if _, err := template.New(field).Funcs(TemplateFuncs).Option("missingkey=error").Parse(text); err != nil {
				bad(p.Line, f+"."+field, "template: %v", strings.TrimPrefix(err.Error(), "template: "))
			}
		}
	}
	selectors := map[string]int{}
	for i := range c.Groups {
		g := &c.Groups[i]
		f := fmt.Sprintf("groups[%d]", i)
		if g.Profile == "" {
			bad(g.Line, f+".profile", "missing")
		} else if c.ProfileByName(g.Profile) == nil {
			bad(g.Line, f+".profile", "%q is not a profile", g.Profile)
		}
		if len(g.Selector.MAC) > 0 {
			if err := CheckMAC(g.Selector.MAC); err != nil {
				bad(g.Line, f+".selector.mac", "%v", err)
			}
		}
		if err := CheckHostname(g.Selector.Hostname); err != nil {
			bad(g.Line, f+".selector.hostname", "%v", err)
		}
		switch g.Selector.Platform {
		case "", "pcbios", "efi":
		default:
			bad(g.Line, f+".selector.platform", "%q: want pcbios or efi", g.Selector.Platform)
		}
		for j, name := range g.Selector.Classes {
			switch {
			case !c.ClassByName(name):
				bad(g.Line, fmt.Sprintf("%s.selector.classes[%d]", f, j), "%q is not a class", name)
			case slices.Index(g.Selector.Classes, name) < j:
				bad(g.Line, fmt.Sprintf("%s.selector.classes[%d]", f, j), "%q is listed twice", name)
			}
		}
		if j, dup := selectors[g.Selector.key()]; dup {
			bad(g.Line, f+".selector", "the same as groups[%d]: which one applies would be ambiguous", j)
		}
		selectors[g.Selector.key()] = i
	}
	for i := range c.Reservations {
		r := &c.Reservations[i]
		if r.Profile != "" && c.ProfileByName(r.Profile) == nil {
			bad(r.Line, fmt.Sprintf("reservations[%d].profile", i), "%q is not a profile", r.Profile)
		}
	}
}

// menuName is an item's key in the menu script: it names an iPXE label, which must stay one token.
var menuName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func (c *Config) validateMenu(m *Menu, line int, f string, bad report) {
	if len(m.Items) == 0 {
		bad(line, f+".items", "a menu needs at least one item")
	}
	if m.Timeout < 0 {
		bad(line, f+".timeout", "negative")
	}
	if strings.ContainsAny(m.Title, "\r\n\x00") {
		bad(line, f+".title", "one line, please")
	}
	names := map[string]int{}
	for i := range m.Items {
		it := &m.Items[i]
		fi := fmt.Sprintf("%s.items[%d]", f, i)
		l := it.Line
		if l == 0 {
			l = line
		}
		kinds := 0
		for _, set := range []bool{it.Profile != "", it.Chain != "", it.LocalDisk} {
			if set {
				kinds++
			}
		}
		if kinds != 1 {
			bad(l, fi, "set one of profile, chain or local_disk")
		}
		if it.Profile != "" {
			switch p := c.ProfileByName(it.Profile); {
			case p == nil:
				bad(l, fi+".profile", "%q is not a profile", it.Profile)
			case p.Menu != nil:
				bad(l, fi+".profile", "%q is a menu: menus do not nest", it.Profile)
			}
		}
		if err := checkAssetRef(it.Chain); err != nil {
			bad(l, fi+".chain", "%v", err)
		}
		name := it.Name
		if name == "" {
			name = it.Profile
		}
		switch {
		case name == "":
			bad(l, fi+".name", "missing (only a profile item is named after its profile)")
		case !menuName.MatchString(name):
			bad(l, fi+".name", "%q: letters, digits, '.', '_' and '-' only", name)
		default:
			if j, dup := names[name]; dup {
				bad(l, fi+".name", "%q is also items[%d]", name, j)
			}
			names[name] = i
		}
		if strings.ContainsAny(it.Label, "\r\n\x00") {
			bad(l, fi+".label", "one line, please")
		}
	}
	if _, ok := names[m.Default]; m.Default != "" && !ok {
		bad(line, f+".default", "%q is not an item's name", m.Default)
	}
}

// Key is the item's key: its own name, else its profile's.
func (it MenuItem) Key() string {
	if it.Name != "" {
		return it.Name
	}
	return it.Profile
}

// checkTFTPURL accepts tftp://SERVER/FILE: a file every boot loader can fetch, GRUB under Secure
// Boot too (it may load no http module there). GRUB names a TFTP file by server and path alone,
// so a port, user, query or fragment, which it could not follow, is refused here.
func checkTFTPURL(ref string) error {
	u, err := url.Parse(ref)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL: %v", ref, err)
	case u.Hostname() == "" || u.Path == "" || u.Path == "/":
		return fmt.Errorf("%q: want tftp://SERVER/FILE", ref)
	case u.Port() != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(u.Path, " \t\x00"):
		return fmt.Errorf("%q: a tftp URL is tftp://SERVER/FILE, with no port, user, query, fragment or whitespace", ref)
	}
	return nil
}

// checkAssetRef accepts an http(s) URL, a tftp URL or a relative asset name that stays inside
// the assets directory.
func checkAssetRef(ref string) error {
	if ref == "" {
		return nil
	}
	if strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://") {
		if _, err := url.Parse(ref); err != nil {
			return fmt.Errorf("%q is not a URL: %v", ref, err)
		}
		return nil
	}
	if strings.HasPrefix(ref, "tftp://") {
		return checkTFTPURL(ref)
	}
	if strings.HasPrefix(ref, "/") || strings.Contains(ref, "\\") || strings.ContainsRune(ref, 0) {
		return fmt.Errorf("%q: want an asset name relative to http.assets, or an http(s) or tftp URL", ref)
	}
	for _, part := range strings.Split(ref, "/") {
		if part == ".." {
			return fmt.Errorf("%q leaves the assets directory", ref)
		}
	}
	return nil
}
