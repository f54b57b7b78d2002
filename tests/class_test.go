//go:build integration

package tests

import (
	"bytes"
	"strings"
	"testing"

	"github.com/netbootd/netbootd/tests/netns"
)

// classRackConfig: rackConfig with client classes. foo (vendor class) and tinkerbell (user
// class) are evaluated by the Go path; lab (MAC prefix) and pxe43 (MAC prefix, custom option
// 43) are pre-rendered into the XDP program's reservations.
const classRackConfig = rackConfig + `
  - {mac: "02:00:00:00:01:0b", ip: 10.10.0.12, hostname: foo12}
  - {mac: "02:00:00:00:02:0a", ip: 10.10.0.13, hostname: pxe13}
classes:
  - name: foo
    match: {vendor_class: foo-vendor, mac_prefix: "02:00:00:00:01"}
    boot_file: foo.efi
    next_server: 10.10.0.7
  - name: tinkerbell
    match: {user_class: Tinkerbell}
    ipxe: true
    boot_file: http://10.10.0.1:8080/auto.ipxe
  - name: lab
    match: {mac_prefix: "02:00:00:00:00:0a"}
    boot_file: lab.ipxe
  - name: pxe43
    match: {mac_prefix: "02:00:00:00:02"}
    options:
      custom: [{code: 43, type: hex, value: "06:01:03:0a:04:00:50:58:45:ff", always: true}]
`

// udhcpcBootScript adds what udhcpc learned about booting to udhcpcScript's line.
const udhcpcBootScript = udhcpcScript + `echo "event=$1 ip=$ip bootfile=$boot_file siaddr=$siaddr"` + "\n"

func udhcpcBoot(t *testing.T, c *netns.NS, extra ...string) map[string]string {
	t.Helper()
	args := append([]string{"udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "4", "-T", "1", "-A", "1",
		"-s", writeScript(t, udhcpcBootScript)}, extra...)
	out, err := c.Exec("busybox", args...)
	if err != nil {
		t.Fatalf("udhcpc %v in %s: %v\n%s", extra, c.Name(), err, out)
	}
	f := boundFields(out)
	if f == nil {
		t.Fatalf("udhcpc %v in %s: no bound event:\n%s", extra, c.Name(), out)
	}
	return f
}

// Real udhcpc clients get their class's boot file: by vendor class (-V) and user class
// (-x 77) from the Go path, for a pool client and for a reservation whose class the program
// leaves to Go (counted pass_class); by MAC prefix from the XDP program for a reservation.
func TestClassUdhcpcBootFiles(t *testing.T) {
	r := newXDPRack(t)
	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", classRackConfig, "", "--xdp", "native", "--pin-dir", pins)

	got := udhcpcBoot(t, r.client(t, "02:00:00:00:01:05"), "-V", "foo-vendor")
	if got["bootfile"] != "foo.efi" || got["siaddr"] != "10.10.0.7" || !strings.HasPrefix(got["ip"], "10.10.0.1") {
		t.Errorf("pool client with vendor class foo-vendor: %v", got)
	}
	got = udhcpcBoot(t, r.client(t, "02:00:00:00:01:06"), "-x", "0x4d:54696e6b657262656c6c") // "Tinkerbell"
	if got["bootfile"] != "http://10.10.0.1:8080/auto.ipxe" {
		t.Errorf("pool client with user class Tinkerbell: %v", got)
	}
	got = udhcpcBoot(t, r.client(t, "02:00:00:00:01:07"), "-V", "bar-vendor")
	if got["bootfile"] != "" {
		t.Errorf("pool client of no class got a boot file: %v", got)
	}

	passed := d.metric("netbootd_xdp_packets_total", `result="pass_class"`)
	got = udhcpcBoot(t, r.client(t, "02:00:00:00:01:0b"), "-V", "foo-vendor")
	if got["ip"] != "10.10.0.12" || got["bootfile"] != "foo.efi" || got["siaddr"] != "10.10.0.7" {
		t.Errorf("reserved client with vendor class foo-vendor: %v", got)
	}
	if after := d.metric("netbootd_xdp_packets_total", `result="pass_class"`); after < passed+2 {
		t.Errorf("XDP pass_class %v → %v: want its DISCOVER and REQUEST passed to the Go path", passed, after)
	}

	c := r.client(t, "02:00:00:00:00:0a")
	before := d.metric("netbootd_xdp_packets_total", `result="ack"`)
	got = udhcpcBoot(t, c)
	if got["ip"] != "10.10.0.10" || got["bootfile"] != "lab.ipxe" || got["siaddr"] != "10.10.0.1" {
		t.Errorf("reserved client of class lab: %v", got)
	}
	if after := d.metric("netbootd_xdp_packets_total", `result="ack"`); after <= before {
		t.Errorf("the lab client was not answered by the fast path (XDP acks %v → %v)", before, after)
	}
}

// A custom option 43 replaces netbootd's own PXE vendor options: on the wire it is there once,
// as configured, from the Go path (pool) and from the XDP program (reservation). udhcpc
// presents itself as PXE firmware (vendor class PXEClient, arch 0), which is what gets
// netbootd's own option 43. (It was sent beside netbootd's 06 01 08 ff before.)
func TestClassCustomOption43OnceOnTheWire(t *testing.T) {
	r := newXDPRack(t)
	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", classRackConfig, "", "--xdp", "native", "--pin-dir", pins)
	want := []byte{6, 1, 3, 10, 4, 0, 'P', 'X', 'E', 255}
	for _, tc := range []struct{ mac, ip string }{
		{"02:00:00:00:02:01", "10.10.0.1"},  // pool: the Go path
		{"02:00:00:00:02:0a", "10.10.0.13"}, // reserved: the XDP program
	} {
		t.Run(tc.mac, func(t *testing.T) {
			c := r.client(t, tc.mac)
			capture := startCapture(t, c, "eth0", 68)
			offers, acks := d.metric("netbootd_xdp_packets_total", `result="offer"`), d.metric("netbootd_xdp_packets_total", `result="ack"`)
			// PXE firmware pads its requests (to 548 bytes); udhcpc does not, so an option of
			// private use (250) pads them here: the reply then never needs the frame to grow,
			// which native XDP on a veth cannot always do (that would go up as pass_size).
			got := udhcpcBoot(t, c, "-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000",
				"-x", "0xfa:"+strings.Repeat("00", 200))
			if !strings.HasPrefix(got["ip"], tc.ip) || got["bootfile"] != "undionly.kpxe" {
				t.Errorf("udhcpc as PXE firmware: %v", got)
			}
			var replies [][]byte
			waitFor(t, "OFFER and ACK captured", func() bool {
				replies = dhcpReplies(capture.payloads(t))
				return len(replies) >= 2
			})
			capture.stop(t)
			for _, p := range replies {
				if got := optionInstances(p, 43); len(got) != 1 || !bytes.Equal(got[0], want) {
					t.Errorf("reply with option 43 %x, want once %x", got, want)
				}
			}
			fast := d.metric("netbootd_xdp_packets_total", `result="offer"`) > offers && d.metric("netbootd_xdp_packets_total", `result="ack"`) > acks
			if reserved := tc.ip != "10.10.0.1"; fast != reserved {
				t.Errorf("OFFER and ACK by the fast path: %v, want %v", fast, reserved)
			}
		})
	}
}

// dhcpReplies are the BOOTP replies among UDP payloads.
func dhcpReplies(payloads [][]byte) [][]byte {
	var out [][]byte
	for _, p := range payloads {
		if bootpOp(p) == 2 {
			out = append(out, p)
		}
	}
	return out
}

// optionInstances returns every instance of option code in a BOOTP payload's options, as on
// the wire (not merged, as a parser would).
func optionInstances(p []byte, code byte) [][]byte {
	var out [][]byte
	if len(p) < 240 {
		return nil
	}
	o := p[240:]
	for i := 0; i < len(o) && o[i] != 255; {
		if o[i] == 0 {
			i++
			continue
		}
		if i+1 >= len(o) || i+2+int(o[i+1]) > len(o) {
			break
		}
		if o[i] == code {
			out = append(out, o[i+2:i+2+int(o[i+1])])
		}
		i += 2 + int(o[i+1])
	}
	return out
}
