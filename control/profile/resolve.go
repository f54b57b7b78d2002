package profile

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/netbootd/netbootd/control/config"
)

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
