package kube

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/inventory/kube/v1alpha1"
)

// Rejection reasons: the values of the reason label of
// netbootd_inventory_objects_rejected_total.
const (
	ReasonInvalidMAC     = "invalid_mac"
	ReasonInvalidIP      = "invalid_ip"
	ReasonOutsideSubnets = "ip_outside_subnets"
	ReasonDuplicateMAC   = "duplicate_mac"
	ReasonDuplicateIP    = "duplicate_ip"
	ReasonInvalidOptions = "invalid_options"
	ReasonInvalidSpec    = "invalid_spec"
	ReasonUnknownProfile = "unknown_profile"
	ReasonDuplicateName  = "duplicate_name"
)

type rejection struct {
	kind, namespace, name, uid, resourceVersion string
	reason, detail                              string
}

type built struct {
	snap       Snapshot
	rejections []rejection
	index      map[string]objKey // MAC → Machine, for status reports
}

// build converts the informers' objects into a snapshot. Every object is checked as the
// daemon's config.Validate would check it, so that one bad object is skipped (and reported)
// instead of failing the whole snapshot. On a conflict (duplicate MAC, IP or profile name) the
// older object keeps its place and the newer one is rejected.
func build(machines []*v1alpha1.Machine, profiles []*v1alpha1.Profile, subnets []netip.Prefix, servers []netip.Addr) built {
	b := built{
		snap:  Snapshot{At: time.Now()},
		index: make(map[string]objKey, len(machines)),
	}
	sortByAge(profiles, func(p *v1alpha1.Profile) (time.Time, string, string) {
		return p.CreationTimestamp.Time, p.Namespace, p.Name
	})
	sortByAge(machines, func(m *v1alpha1.Machine) (time.Time, string, string) {
		return m.CreationTimestamp.Time, m.Namespace, m.Name
	})

	names := map[string]*v1alpha1.Profile{}
	for _, p := range profiles {
		reject := func(reason, format string, a ...any) {
			b.rejections = append(b.rejections, rejection{kind: "Profile", namespace: p.Namespace, name: p.Name,
				uid: string(p.UID), resourceVersion: p.ResourceVersion, reason: reason, detail: fmt.Sprintf(format, a...)})
		}
		if other, dup := names[p.Name]; dup {
			reject(ReasonDuplicateName, "profile %q is also %s/%s", p.Name, other.Namespace, other.Name)
			continue
		}
		cp := ProfileOf(p)
		// The daemon's own checks (kernel xor script, asset names, templates), on this profile alone.
		check := config.Config{Interface: config.Interface{Mode: config.ModeProxy, ServerIP: netip.AddrFrom4([4]byte{127, 0, 0, 1})},
			Profiles: []config.Profile{cp}}
		if err := check.Validate(); err != nil {
			reject(ReasonInvalidSpec, "%s", strings.ReplaceAll(err.Error(), "profiles[0]", "spec"))
			continue
		}
		names[p.Name] = p
		b.snap.Profiles = append(b.snap.Profiles, cp)
	}

	macs := map[string]*v1alpha1.Machine{}
	ips := map[netip.Addr]*v1alpha1.Machine{}
	for _, m := range machines {
		reject := func(reason, format string, a ...any) {
			b.rejections = append(b.rejections, rejection{kind: "Machine", namespace: m.Namespace, name: m.Name,
				uid: string(m.UID), resourceVersion: m.ResourceVersion, reason: reason, detail: fmt.Sprintf(format, a...)})
		}
		rs, reason, detail := reservationsOf(m, subnets, servers)
		if reason == "" && m.Spec.Profile != "" && names[m.Spec.Profile] == nil {
			reason, detail = ReasonUnknownProfile, fmt.Sprintf("profile %q does not exist (or is rejected, or not selected)", m.Spec.Profile)
		}
		if reason == "" {
			reason, detail = conflicts(rs, macs, ips)
		}
		if reason != "" {
			reject(reason, "%s", detail)
			continue
		}
		for i, r := range rs {
			macs[r.MAC.String()] = m
			ips[r.IP] = m
			b.index[r.MAC.String()] = objKey{m.Namespace, m.Name}
			rs[i].Netboot = m.Spec.Netboot
		}
		b.snap.Reservations = append(b.snap.Reservations, rs...)
		b.snap.Machines++
	}
	b.snap.Rejected = len(b.rejections)
	return b
}

func conflicts(rs []config.Reservation, macs map[string]*v1alpha1.Machine, ips map[netip.Addr]*v1alpha1.Machine) (string, string) {
	self := map[string]bool{}
	selfIP := map[netip.Addr]bool{}
	for _, r := range rs {
		mac := r.MAC.String()
		if o := macs[mac]; o != nil {
			return ReasonDuplicateMAC, fmt.Sprintf("%s is also Machine %s/%s", mac, o.Namespace, o.Name)
		}
		if self[mac] {
			return ReasonDuplicateMAC, fmt.Sprintf("%s is listed twice", mac)
		}
		if o := ips[r.IP]; o != nil {
			return ReasonDuplicateIP, fmt.Sprintf("%s is also Machine %s/%s", r.IP, o.Namespace, o.Name)
		}
		if selfIP[r.IP] {
			return ReasonDuplicateIP, fmt.Sprintf("%s is listed twice", r.IP)
		}
		self[mac], selfIP[r.IP] = true, true
	}
	return "", ""
}

// reservationsOf converts a Machine, one reservation per interface, or says why it cannot.
func reservationsOf(m *v1alpha1.Machine, subnets []netip.Prefix, servers []netip.Addr) ([]config.Reservation, string, string) {
	if len(m.Spec.Interfaces) == 0 {
		return nil, ReasonInvalidSpec, "no interfaces"
	}
	if err := config.CheckHostname(m.Spec.Hostname); err != nil {
		return nil, ReasonInvalidSpec, "hostname " + err.Error()
	}
	var opts config.Options
	if d := m.Spec.DHCP; d != nil {
		var err error
		if opts.Router, err = addrs(d.Router); err != nil {
			return nil, ReasonInvalidOptions, "dhcp.router: " + err.Error()
		}
		if opts.DNS, err = addrs(d.DNS); err != nil {
			return nil, ReasonInvalidOptions, "dhcp.dns: " + err.Error()
		}
		if opts.NTP, err = addrs(d.NTP); err != nil {
			return nil, ReasonInvalidOptions, "dhcp.ntp: " + err.Error()
		}
		if d.MTU != 0 && (d.MTU < 68 || d.MTU > 65535) {
			return nil, ReasonInvalidOptions, fmt.Sprintf("dhcp.mtu %d: want 68-65535", d.MTU)
		}
		if strings.ContainsAny(d.Domain, " \t\x00") || len(d.Domain) > 253 {
			return nil, ReasonInvalidOptions, fmt.Sprintf("dhcp.domain %q is not a domain name", d.Domain)
		}
		opts.MTU, opts.Domain = uint16(d.MTU), d.Domain
	}
	var lbls map[string]string
	if len(m.Labels) > 0 {
		lbls = make(map[string]string, len(m.Labels))
		for k, v := range m.Labels {
			lbls[k] = v
		}
	}
	rs := make([]config.Reservation, 0, len(m.Spec.Interfaces))
	for i, ifc := range m.Spec.Interfaces {
		hw, err := net.ParseMAC(ifc.MAC)
		if err != nil || len(hw) != 6 {
			return nil, ReasonInvalidMAC, fmt.Sprintf("interfaces[%d].mac %q is not an Ethernet MAC address", i, ifc.MAC)
		}
		if err := config.CheckMAC(config.MAC(hw)); err != nil {
			return nil, ReasonInvalidMAC, fmt.Sprintf("interfaces[%d].mac %v", i, err)
		}
		ip, err := netip.ParseAddr(ifc.IPv4)
		if err != nil || !ip.Is4() || ip.IsUnspecified() {
			return nil, ReasonInvalidIP, fmt.Sprintf("interfaces[%d].ipv4 %q is not an IPv4 address", i, ifc.IPv4)
		}
		if slices.Contains(servers, ip) {
			return nil, ReasonInvalidIP, fmt.Sprintf("interfaces[%d].ipv4 %s is netbootd's own address", i, ip)
		}
		if len(subnets) > 0 && !inAny(ip, subnets) {
			return nil, ReasonOutsideSubnets, fmt.Sprintf("interfaces[%d].ipv4 %s is in none of netbootd's subnets", i, ip)
		}
		rs = append(rs, config.Reservation{MAC: config.MAC(hw), IP: ip, Hostname: m.Spec.Hostname,
			Profile: m.Spec.Profile, Labels: lbls, Options: opts})
	}
	return rs, "", ""
}

// ProfileOf converts a Profile object into a config profile named by metadata.name.
func ProfileOf(p *v1alpha1.Profile) config.Profile {
	return config.Profile{Name: p.Name, Kernel: p.Spec.Kernel, Initrds: append([]string(nil), p.Spec.Initrds...),
		Args: p.Spec.Args, Script: p.Spec.Script, UserData: p.Spec.UserData, MetaData: p.Spec.MetaData, Ignition: p.Spec.Ignition}
}

func addrs(in []v1alpha1.IPv4) (config.AddrList, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make(config.AddrList, 0, len(in))
	for _, s := range in {
		a, err := netip.ParseAddr(string(s))
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 address", s)
		}
		out = append(out, a)
	}
	return out, nil
}

func inAny(ip netip.Addr, subnets []netip.Prefix) bool {
	for _, p := range subnets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func sortByAge[T any](s []T, key func(T) (time.Time, string, string)) {
	sort.SliceStable(s, func(i, j int) bool {
		ti, ni, mi := key(s[i])
		tj, nj, mj := key(s[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		if ni != nj {
			return ni < nj
		}
		return mi < mj
	})
}
