package profile

import (
	"strings"
	"testing"
)

const classProfiles = `
interface: {mode: authoritative}
subnets: [{cidr: 10.10.0.0/24, pools: ["10.10.0.100-10.10.0.199"]}]
classes:
  - {name: tinkerbell, match: {user_class: Tinkerbell}, ipxe: true}
  - {name: lab, match: {mac_prefix: "52:54:00"}, profile: p-lab}
  - {preset: raspberrypi, profile: p-pi}
  - {name: arm, match: {arch: [11]}, boot_file: arm.efi}
reservations:
  - {mac: "52:54:00:00:00:01", ip: 10.10.0.11, profile: rescue}
  - {mac: "52:54:00:00:00:02", ip: 10.10.0.12, labels: {role: worker}}
profiles:
  - {name: p-lab, kernel: k}
  - {name: p-pi, kernel: k}
  - {name: p-tink, kernel: k}
  - {name: p-tink-arm, kernel: k}
  - {name: p-mac, kernel: k}
  - {name: p-default, kernel: k}
  - {name: rescue, kernel: k}
groups:
  - {name: tink, profile: p-tink, selector: {classes: [tinkerbell]}}
  - {name: tink-arm, profile: p-tink-arm, selector: {classes: [tinkerbell, arm]}}
  - {name: one-mac, profile: p-mac, selector: {mac: "02:00:00:00:00:09"}}
  - {name: default, profile: p-default}
`

// A class's profile and a group selector's classes: the reservation's profile wins, then the
// first class in the file (among the machine's latest DHCP classes) that names a profile, then
// the groups, where each class of a selector counts as one field.
func TestClassProfilePrecedence(t *testing.T) {
	r := resolver(t, classProfiles)
	for _, tc := range []struct {
		name    string
		facts   Facts
		profile string
		reason  string
	}{
		{"reservation over class", Facts{MAC: mac("52:54:00:00:00:01"), Classes: []string{"lab"}}, "rescue", `reservation 52:54:00:00:00:01 names profile "rescue"`},
		{"class over groups", Facts{MAC: mac("52:54:00:00:00:02"), Classes: []string{"lab"}}, "p-lab", `class "lab" names profile "p-lab"`},
		{"first class in the file wins", Facts{MAC: mac("dc:a6:32:00:00:01"), Classes: []string{"raspberrypi", "lab"}}, "p-lab", `class "lab"`},
		{"preset class", Facts{MAC: mac("dc:a6:32:00:00:01"), Classes: []string{"raspberrypi"}}, "p-pi", `class "raspberrypi" names profile "p-pi"`},
		{"class selector", Facts{MAC: mac("02:00:00:00:00:01"), Classes: []string{"tinkerbell"}}, "p-tink", `group "tink" (classes tinkerbell; 1 selector field)`},
		{"every class of the selector", Facts{MAC: mac("02:00:00:00:00:01"), Classes: []string{"tinkerbell", "arm"}}, "p-tink-arm", `group "tink-arm" (classes tinkerbell,arm; 2 selector fields)`},
		{"a class missing: not selected", Facts{MAC: mac("02:00:00:00:00:01"), Classes: []string{"arm"}}, "p-default", `group "default"`},
		{"classes tie with a MAC: first in the file", Facts{MAC: mac("02:00:00:00:00:09"), Classes: []string{"tinkerbell"}}, "p-tink", `tied with group "one-mac"`},
		{"no classes: groups", Facts{MAC: mac("02:00:00:00:00:01")}, "p-default", `group "default"`},
		// The facts name a class the file has no longer (a reload): matches nothing.
		{"unknown class", Facts{MAC: mac("02:00:00:00:00:01"), Classes: []string{"gone"}}, "p-default", `group "default"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := r.Resolve(tc.facts)
			if !ok {
				t.Fatalf("no match: %s", m.Reason)
			}
			if m.Profile.Name != tc.profile || !strings.Contains(m.Reason, tc.reason) {
				t.Errorf("profile %q (%s); want %q (%s)", m.Profile.Name, m.Reason, tc.profile, tc.reason)
			}
		})
	}
}

// Without a matching group the reason names the machine's classes.
func TestClassProfileNoMatchSaysClasses(t *testing.T) {
	r := resolver(t, `
interface: {mode: authoritative}
subnets: [{cidr: 10.10.0.0/24}]
classes: [{name: tinkerbell, match: {user_class: Tinkerbell}, ipxe: true}]
profiles: [{name: p, kernel: k}]
groups: [{name: g, profile: p, selector: {classes: [tinkerbell]}}]
`)
	m, ok := r.Resolve(Facts{MAC: mac("02:00:00:00:00:01"), Classes: []string{"other"}})
	if ok || !strings.Contains(m.Reason, "classes other") {
		t.Errorf("matched %v, reason %q; want no match, naming the classes", ok, m.Reason)
	}
}
