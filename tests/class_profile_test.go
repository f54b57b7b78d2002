//go:build integration

package tests

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// classProfileConfig: classes that choose profiles, directly (profile:) or through a group's
// selector (classes:). lab is a MAC prefix of a reservation, answered by the XDP program (vend
// has a MAC prefix too: otherwise udhcpc's own vendor class would send 0a's requests up).
const classProfileConfig = rackConfig + `
  - {mac: "02:00:00:00:00:0c", ip: 10.10.0.12, hostname: node12, profile: p-rescue}
classes:
  - {name: tinkerbell, match: {user_class: Tinkerbell}, ipxe: true, boot_file: "http://10.10.0.1:8080/auto.ipxe", profile: p-tink}
  - {name: vend, match: {vendor_class: lab-vendor, mac_prefix: "02:00:00:00:01"}, options: {domain: vend.test}}
  - {name: lab, match: {mac_prefix: "02:00:00:00:00:0a"}, profile: p-lab}
profiles:
  - {name: p-tink, script: "#!ipxe\necho profile=p-tink\n"}
  - {name: p-vend, script: "#!ipxe\necho profile=p-vend\n"}
  - {name: p-lab, script: "#!ipxe\necho profile=p-lab\n"}
  - {name: p-rescue, script: "#!ipxe\necho profile=p-rescue\n"}
  - {name: p-default, script: "#!ipxe\necho profile=p-default\n"}
groups:
  - {name: vend, profile: p-vend, selector: {classes: [vend]}}
  - {name: default, profile: p-default}
`

// Real udhcpc clients get a lease with a vendor class (-V) or a user class (-x 77); then curl,
// from each client's namespace, fetches its iPXE script: the profile its class chose (a
// class's profile, or a group selecting the class). A reservation's profile wins over its
// class's; a machine that asks again without the user class gets the default again (its
// latest DHCP answer counts); a reserved machine answered by the XDP program gets the profile of
// its MAC-prefix class.
func TestClassProfileUdhcpcThenScript(t *testing.T) {
	r := newXDPRack(t)
	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", classProfileConfig, "", "--xdp", "native", "--pin-dir", pins)
	base := "http://" + d.httpAddr
	const tinkerbell = "0x4d:54696e6b657262656c6c" // option 77 "Tinkerbell"

	type step struct {
		name, mac string
		udhcpc    []string
		classes   []string
		profile   string
	}
	for _, tc := range []step{
		{"user class: the class's profile", "02:00:00:00:01:01", []string{"-x", tinkerbell}, []string{"tinkerbell"}, "p-tink"},
		{"vendor class: the group selecting the class", "02:00:00:00:01:02", []string{"-V", "lab-vendor"}, []string{"vend"}, "p-vend"},
		{"no class: the default group", "02:00:00:00:01:03", []string{"-V", "other-vendor"}, nil, "p-default"},
		{"reservation's profile over the class's", "02:00:00:00:00:0c", []string{"-x", tinkerbell}, []string{"tinkerbell"}, "p-rescue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := r.client(t, tc.mac)
			udhcpcOnce(t, c, tc.udhcpc...)
			waitClasses(t, d, tc.mac, tc.classes)
			code, body := curlCode(t, c, "GET", base+"/ipxe/script?mac="+tc.mac)
			if code != 200 || !strings.Contains(body, "profile="+tc.profile+"\n") {
				t.Errorf("script %d, want profile %s:\n%s", code, tc.profile, body)
			}
			if tc.mac == "02:00:00:00:01:01" {
				// Asked again without the user class: no class, the default profile.
				udhcpcOnce(t, c)
				waitClasses(t, d, tc.mac, nil)
				if code, body := curlCode(t, c, "GET", base+"/ipxe/script?mac="+tc.mac); code != 200 || !strings.Contains(body, "profile=p-default\n") {
					t.Errorf("after a DHCP answer without the class: script %d, want p-default:\n%s", code, body)
				}
			}
		})
	}

	t.Run("XDP-answered reservation: its MAC-prefix class's profile", func(t *testing.T) {
		c := r.client(t, "02:00:00:00:00:0a")
		before := d.metric("netbootd_xdp_packets_total", `result="ack"`)
		if ip := udhcpcOnce(t, c)["ip"]; ip != "10.10.0.10" {
			t.Fatalf("got %q, want the reservation 10.10.0.10", ip)
		}
		if after := d.metric("netbootd_xdp_packets_total", `result="ack"`); after <= before {
			t.Fatalf("not answered by the XDP program (acks %v → %v)", before, after)
		}
		waitClasses(t, d, "02:00:00:00:00:0a", []string{"lab"})
		if code, body := curlCode(t, c, "GET", base+"/ipxe/script?mac=02:00:00:00:00:0a"); code != 200 || !strings.Contains(body, "profile=p-lab\n") {
			t.Errorf("script %d, want p-lab:\n%s", code, body)
		}
	})
}

// waitClasses waits until the machine's timeline shows exactly these classes. The DHCP server
// records them just after it sends its reply, so the machine may not be there yet: not found
// counts as "not yet".
func waitClasses(t *testing.T, d *daemon, mac string, want []string) {
	t.Helper()
	var m struct {
		Classes []string `json:"classes"`
	}
	waitFor(t, mac+" classes "+strings.Join(want, ","), func() bool {
		out, err := d.ns.Exec("curl", "-sf", "http://"+d.mgmtAddr+"/api/v1/machines/"+mac)
		if err != nil {
			return false
		}
		m.Classes = nil
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("GET /api/v1/machines/%s: %v: %s", mac, err, out)
		}
		return slices.Equal(m.Classes, want)
	})
}
