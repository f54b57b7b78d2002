package kube

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/netbootd/netbootd/control/inventory/kube/v1alpha1"
)

func machine(name string, age int, profile string, ifs ...string) *v1alpha1.Machine {
	m := &v1alpha1.Machine{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "rack", UID: types.UID("uid-" + name),
		CreationTimestamp: metav1.NewTime(time.Unix(int64(1000+age), 0)), Labels: map[string]string{"rack": "r12"}},
		Spec: v1alpha1.MachineSpec{Hostname: name, Profile: profile}}
	for i := 0; i+1 < len(ifs); i += 2 {
		m.Spec.Interfaces = append(m.Spec.Interfaces, v1alpha1.Interface{MAC: ifs[i], IPv4: ifs[i+1]})
	}
	return m
}

func profile(name string, age int, spec v1alpha1.ProfileSpec) *v1alpha1.Profile {
	return &v1alpha1.Profile{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "rack", UID: types.UID("uid-p-" + name),
		CreationTimestamp: metav1.NewTime(time.Unix(int64(1000+age), 0))}, Spec: spec}
}

func TestBuild(t *testing.T) {
	subnets := []netip.Prefix{netip.MustParsePrefix("10.10.0.0/24"), netip.MustParsePrefix("10.30.0.0/24")}
	off := false
	dhcpOnly := machine("dhcponly", 9, "", "52:54:00:00:00:09", "10.10.0.19")
	dhcpOnly.Spec.Netboot = &off
	withOpts := machine("opts", 10, "", "52:54:00:00:00:10", "10.10.0.20")
	withOpts.Spec.DHCP = &v1alpha1.DHCPOptions{Router: []v1alpha1.IPv4{"10.10.0.1"}, DNS: []v1alpha1.IPv4{"10.10.0.53"}, Domain: "r12.example", MTU: 9000}
	badOpts := machine("badopts", 11, "", "52:54:00:00:00:11", "10.10.0.21")
	badOpts.Spec.DHCP = &v1alpha1.DHCPOptions{DNS: []v1alpha1.IPv4{"fe80::1"}}
	// What config.Validate refuses is refused per object here, so one such Machine cannot make
	// the whole snapshot fail validation.
	ctlHost := machine("ctlhost", 12, "", "52:54:00:00:00:12", "10.10.0.22")
	ctlHost.Spec.Hostname = "node\x1b[2J"
	machines := []*v1alpha1.Machine{
		machine("dup-mac", 5, "", "52:54:00:00:00:01", "10.10.0.50"), // newer than node01: rejected
		machine("node01", 1, "worker", "52:54:00:00:00:01", "10.10.0.11", "52:54:00:00:01:01", "10.10.0.111"),
		machine("node02", 2, "", "52:54:00:00:00:02", "10.10.0.12"),
		machine("badmac", 3, "", "52:54:00:00:00", "10.10.0.13"),
		machine("outside", 4, "", "52:54:00:00:00:04", "10.20.0.14"),
		machine("dup-ip", 6, "", "52:54:00:00:00:06", "10.10.0.12"),
		machine("noprofile", 7, "nosuch", "52:54:00:00:00:07", "10.10.0.17"),
		machine("badprofile", 8, "both", "52:54:00:00:00:08", "10.10.0.18"),
		dhcpOnly, withOpts, badOpts, ctlHost,
		machine("bcastmac", 13, "", "ff:ff:ff:ff:ff:ff", "10.10.0.23"),
		machine("zeromac", 14, "", "00:00:00:00:00:00", "10.10.0.24"),
		machine("serverip", 15, "", "52:54:00:00:00:15", "10.10.0.1"),
		machine("serverip2", 16, "", "52:54:00:00:00:16", "10.30.0.1"), // a second interface's address
	}
	profiles := []*v1alpha1.Profile{
		profile("worker", 1, v1alpha1.ProfileSpec{Kernel: "vmlinuz", Initrds: []string{"initrd.img"}, Args: "console=ttyS0 host={{.Hostname}}"}),
		profile("both", 2, v1alpha1.ProfileSpec{Kernel: "vmlinuz", Script: "#!ipxe\nexit"}),
		profile("badtemplate", 3, v1alpha1.ProfileSpec{Script: "#!ipxe\n{{.Hostname"}),
	}
	other := profile("worker", 9, v1alpha1.ProfileSpec{Script: "#!ipxe\nexit"})
	other.Namespace, other.UID = "other", "uid-other-worker"
	profiles = append(profiles, other)

	b := build(machines, profiles, subnets, []netip.Addr{netip.MustParseAddr("10.10.0.1"), netip.MustParseAddr("10.30.0.1")})

	var got []string
	for _, r := range b.snap.Reservations {
		got = append(got, r.MAC.String()+"="+r.IP.String()+"/"+r.Hostname+"/"+r.Profile)
	}
	want := []string{"52:54:00:00:00:01=10.10.0.11/node01/worker", "52:54:00:00:01:01=10.10.0.111/node01/worker",
		"52:54:00:00:00:02=10.10.0.12/node02/", "52:54:00:00:00:09=10.10.0.19/dhcponly/", "52:54:00:00:00:10=10.10.0.20/opts/"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("reservations (-want +got):\n%s", d)
	}
	reasons := map[string]string{}
	for _, r := range b.rejections {
		reasons[r.kind+"/"+r.name] = r.reason
	}
	wantReasons := map[string]string{
		"Machine/dup-mac": ReasonDuplicateMAC, "Machine/badmac": ReasonInvalidMAC, "Machine/outside": ReasonOutsideSubnets,
		"Machine/dup-ip": ReasonDuplicateIP, "Machine/noprofile": ReasonUnknownProfile, "Machine/badprofile": ReasonUnknownProfile,
		"Machine/badopts": ReasonInvalidOptions, "Profile/both": ReasonInvalidSpec, "Profile/badtemplate": ReasonInvalidSpec,
		"Profile/worker": ReasonDuplicateName, "Machine/ctlhost": ReasonInvalidSpec, "Machine/bcastmac": ReasonInvalidMAC,
		"Machine/zeromac": ReasonInvalidMAC, "Machine/serverip": ReasonInvalidIP, "Machine/serverip2": ReasonInvalidIP,
	}
	if d := cmp.Diff(wantReasons, reasons); d != "" {
		t.Errorf("rejections (-want +got):\n%s", d)
	}
	if len(b.snap.Profiles) != 1 || b.snap.Profiles[0].Name != "worker" || b.snap.Profiles[0].Kernel != "vmlinuz" {
		t.Errorf("profiles = %+v", b.snap.Profiles)
	}
	noBoot := map[string]bool{}
	for _, r := range b.snap.Reservations {
		if r.NoNetboot() {
			noBoot[r.MAC.String()] = true
		}
	}
	if d := cmp.Diff(map[string]bool{"52:54:00:00:00:09": true}, noBoot); d != "" {
		t.Errorf("netboot: false (-want +got):\n%s", d)
	}
	if b.snap.Machines != 4 || b.snap.Rejected != len(wantReasons) {
		t.Errorf("machines %d rejected %d", b.snap.Machines, b.snap.Rejected)
	}
	r := b.snap.Reservations[4]
	if r.Options.Domain != "r12.example" || r.Options.MTU != 9000 || len(r.Options.Router) != 1 || r.Options.DNS[0].String() != "10.10.0.53" {
		t.Errorf("options = %+v", r.Options)
	}
	if r.Labels["rack"] != "r12" {
		t.Errorf("labels = %v", r.Labels)
	}
	if k := b.index["52:54:00:00:01:01"]; k != (objKey{"rack", "node01"}) {
		t.Errorf("index = %v", k)
	}
}

func TestMergeLatestPhaseWins(t *testing.T) {
	t0 := time.Unix(1000, 0)
	u := statusUpdate{phase: "dhcp", phaseAt: t0, lastDHCP: t0}
	u.merge(statusUpdate{phase: "booted", phaseAt: t0.Add(time.Minute), booted: t0.Add(time.Minute)})
	u.merge(statusUpdate{phase: "kernel", phaseAt: t0.Add(time.Second)}) // late, older report
	if u.phase != "booted" || !u.lastDHCP.Equal(t0) || !u.booted.Equal(t0.Add(time.Minute)) {
		t.Errorf("merged = %+v", u)
	}
}
