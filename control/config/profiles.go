package config

import (
	"fmt"
	"net/url"
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
	Kernel   string   `yaml:"kernel"`    // an asset name (served under /assets/) or an http(s) URL
	Initrds  []string `yaml:"initrds"`   // asset names or URLs, loaded in order
	Args     string   `yaml:"args"`      // kernel command line
	Script   string   `yaml:"script"`    // an iPXE script instead of kernel/initrds/args (menus, exit, sanboot)
	UserData string   `yaml:"user_data"` // cloud-init user-data, served at /configs/user-data
	MetaData string   `yaml:"meta_data"` // cloud-init meta-data, served at /configs/meta-data
	Ignition string   `yaml:"ignition"`  // Ignition JSON, served at /configs/ignition
	Line     int      `yaml:"-"`
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
		if (p.Kernel == "") == (p.Script == "") {
			bad(p.Line, f, "set kernel (with initrds and args) or script, not both")
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

// checkAssetRef accepts an http(s) URL or a relative asset name that stays inside the assets
// directory.
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
	if strings.HasPrefix(ref, "/") || strings.Contains(ref, "\\") || strings.ContainsRune(ref, 0) {
		return fmt.Errorf("%q: want an asset name relative to http.assets, or an http(s) URL", ref)
	}
	for _, part := range strings.Split(ref, "/") {
		if part == ".." {
			return fmt.Errorf("%q leaves the assets directory", ref)
		}
	}
	return nil
}
