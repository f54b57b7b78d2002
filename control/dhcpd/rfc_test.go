package dhcpd

import (
	"bytes"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/control/lease"
)

// askRaw sends a request given as bytes through the handler, parsed as the server parses it.
func (f *fixture) askRaw(t *testing.T, b []byte) (*dhcpv4.DHCPv4, *response, string) {
	t.Helper()
	m, err := parseMessage(b)
	if err != nil {
		t.Fatalf("request does not parse: %v", err)
	}
	r, why := f.h.handle(f.st, &request{msg: m, mac: m.ClientHWAddr, src: netip.MustParseAddrPort("0.0.0.0:68"), port: 67})
	if r == nil {
		return nil, nil, why
	}
	reply, err := parseMessage(r.payload)
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return reply, r, ""
}

// optionCodes lists the codes in the options field of a reply, in wire order.
func optionCodes(p []byte) []uint8 {
	var out []uint8
	for o := p[240:]; len(o) >= 2 && o[0] != 255; {
		if o[0] == 0 {
			o = o[1:]
			continue
		}
		out = append(out, o[0])
		o = o[2+int(o[1]):]
	}
	return out
}

// bigOptions is testConfig with a reservation carrying three 120-byte options and two 200-byte
// ones, none sent unless asked for.
func bigOptions() string {
	v120, v200 := strings.Repeat("a", 120), strings.Repeat("b", 200)
	return testConfig + `
  - mac: "02:00:00:00:00:0c"
    ip: 10.0.0.12
    hostname: node12
    options:
      custom:
        - {code: 200, type: string, value: "` + v120 + `"}
        - {code: 201, type: string, value: "` + v120 + `"}
        - {code: 202, type: string, value: "` + v120 + `"}
        - {code: 210, type: string, value: "` + v200 + `"}
        - {code: 211, type: string, value: "` + v200 + `"}
`
}

var macBig = net.HardwareAddr{2, 0, 0, 0, 0, 0x0c}

// RFC 2131 §4.3.1: the server MUST supply as many requested parameters as possible and MUST
// omit the ones that do not fit; the client's maximum is option 57, else 576 (RFC 2131 §2).
// The case: busybox udhcpc (57 = 576) asks for two 200-byte options: a reply, without
// the second, instead of silence.
func TestRFC2131_4_3_1_ReplyTrimmedToClientMaximum(t *testing.T) {
	f := newFixture(t, bigOptions())
	for _, tc := range []struct {
		name    string
		mods    []dhcpv4.Modifier
		dropped []uint8
	}{
		{"57 = 576", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(576))}, []uint8{211}},
		{"no 57: 576", nil, []uint8{211}},
		{"57 below the minimum counts as 576", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(300))}, []uint8{211}},
		{"57 = 1500: everything", []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1500))}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mods := append([]dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionParameterRequestList,
				[]byte{1, 3, 6, 12, 15, 28, 42, 210, 211}))}, tc.mods...)
			o, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, macBig, mods...)
			if o == nil {
				t.Fatalf("no offer: %s", why)
			}
			limit := 548
			if tc.dropped == nil {
				limit = 1472
			}
			if len(r.payload) > limit {
				t.Errorf("reply of %d bytes, client accepts %d", len(r.payload), limit)
			}
			if d := cmp.Diff(tc.dropped, r.droppedOptions); d != "" {
				t.Errorf("dropped options (-want +got):\n%s", d)
			}
			for _, c := range []uint8{53, 54, 51, 58, 59, 1, 3, 6, 12, 15, 28, 210} {
				if !o.Options.Has(dhcpv4.GenericOptionCode(c)) {
					t.Errorf("option %d missing", c)
				}
			}
			if got := len(o.Options.Get(dhcpv4.GenericOptionCode(210))); got != 200 {
				t.Errorf("option 210: %d bytes, want 200", got)
			}
		})
	}
}

// RFC 2131 §4.1 and RFC 2132 §9.3: what does not fit the options field goes into the free file
// and sname fields, announced by option 52; requested options win over unrequested ones, in the
// client's order.
func TestRFC2132_9_3_ReplyOverloadsFileAndSname(t *testing.T) {
	f := newFixture(t, bigOptions())
	o, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, macBig,
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionParameterRequestList, []byte{1, 3, 202, 201, 200, 210})))
	if o == nil {
		t.Fatalf("no offer: %s", why)
	}
	if len(r.payload) > 548 {
		t.Fatalf("reply of %d bytes", len(r.payload))
	}
	// In the client's order: 202 and 201 fill the options field, 200 goes to the file field,
	// 210 (200 bytes) fits nowhere; unrequested small ones (15, 28, 224) end in sname.
	if d := cmp.Diff([]uint8{210}, r.droppedOptions); d != "" {
		t.Errorf("dropped (-want +got):\n%s", d)
	}
	if got := o.Options.Get(dhcpv4.OptionOptionOverload); !bytes.Equal(got, []byte{3}) {
		t.Errorf("option 52 = %x, want 03 (file and sname)", got)
	}
	main := optionCodes(r.payload)
	if !slices.Contains(main, 202) || !slices.Contains(main, 201) || slices.Contains(main, 200) {
		t.Errorf("options field holds %v: want 202 and 201 there, 200 in file", main)
	}
	if r.payload[fileOffset] != 200 || len(o.Options.Get(dhcpv4.GenericOptionCode(200))) != 120 {
		t.Errorf("file field starts with option %d; option 200 read back as %d bytes", r.payload[fileOffset], len(o.Options.Get(dhcpv4.GenericOptionCode(200))))
	}
	for _, c := range []uint8{15, 28, 224} {
		if !o.Options.Has(dhcpv4.GenericOptionCode(c)) {
			t.Errorf("option %d lost though sname had room", c)
		}
	}
	if o.BootFileName != "" {
		t.Errorf("overloaded file field read as boot file %q", o.BootFileName)
	}
}

// A PXE reply needs its file field for the boot file: overload then uses sname only, and the
// boot parameters (file, siaddr, 60, 43, 66, 67) always stay.
func TestRFC2132_9_3_PXEReplyKeepsBootFieldsAndOverloadsSname(t *testing.T) {
	f := newFixture(t, bigOptions())
	mods := append(pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionParameterRequestList, []byte{1, 3, 210, 202, 201, 200})))
	o, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, macBig, mods...)
	if o == nil {
		t.Fatalf("no offer: %s", why)
	}
	if len(r.payload) > 548 {
		t.Fatalf("reply of %d bytes", len(r.payload))
	}
	raw, _ := dhcpv4.FromBytes(r.payload)
	if raw.BootFileName != "ipxe.efi" || !o.ServerIPAddr.Equal(ipOf("10.0.0.1")) || o.ClassIdentifier() != "PXEClient" ||
		o.TFTPServerName() != "10.0.0.1" || o.BootFileNameOption() != "ipxe.efi" || o.Options.Get(dhcpv4.OptionVendorSpecificInformation) == nil {
		t.Errorf("PXE boot parameters lost: file %q siaddr %s 60 %q 66 %q 67 %q", raw.BootFileName, o.ServerIPAddr, o.ClassIdentifier(), o.TFTPServerName(), o.BootFileNameOption())
	}
	if got := o.Options.Get(dhcpv4.OptionOptionOverload); got != nil && !bytes.Equal(got, []byte{2}) {
		t.Errorf("option 52 = %x with the file field in use, want 02 (sname) or none", got)
	}
	if len(o.Options.Get(dhcpv4.GenericOptionCode(210))) != 200 || len(r.droppedOptions) == 0 {
		t.Errorf("option 210 (first asked) has %d bytes; dropped %v", len(o.Options.Get(dhcpv4.GenericOptionCode(210))), r.droppedOptions)
	}
}

// RFC 2131 §4.3.2: a NAK through a relay has the broadcast bit set, so the relay broadcasts it
// (the client has no address to unicast to); a local NAK is broadcast.
func TestRFC2131_4_3_2_RelayedNAKSetsBroadcastBit(t *testing.T) {
	f := newFixture(t, testConfig)
	nak, r, why := f.ask(t, dhcpv4.MessageTypeRequest, macUnknown, dhcpv4.WithGatewayIP(ipOf("10.20.0.1")),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipOf("10.0.0.100")))) // not on the relay's network
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Fatalf("want a NAK, got %v (%s)", nak, why)
	}
	if nak.Flags&flagBcast == 0 || r.udp.String() != "10.20.0.1:67" {
		t.Errorf("relayed NAK: flags %#04x to %s; want the broadcast bit, to 10.20.0.1:67", nak.Flags, r.udp)
	}
	nak, r, _ = f.ask(t, dhcpv4.MessageTypeRequest, macUnknown, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipOf("192.168.1.5"))))
	if nak == nil || r.rawIP != broadcastIP {
		t.Errorf("local NAK not broadcast: %v", r)
	}
}

// RFC 6842 §3: the server MUST echo the client identifier unaltered in OFFER, ACK and NAK; with
// option 82 it stays last (RFC 3046 §2.2).
func TestRFC6842_ClientIdentifierEchoed(t *testing.T) {
	f := newFixture(t, testConfig)
	id := []byte{0xff, 0, 0, 0, 1, 0, 1, 0x2a, 0x2b, 0x2c, 0x2d, 2, 0, 0, 0, 1, 1} // a DUID-based one (RFC 4361)
	cid := dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id))
	agent := dhcpv4.WithOption(dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("port7"))))
	relay := dhcpv4.WithGatewayIP(ipOf("10.20.0.1"))
	for _, tc := range []struct {
		name string
		mt   dhcpv4.MessageType
		mods []dhcpv4.Modifier
		want dhcpv4.MessageType
	}{
		{"offer", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{cid}, dhcpv4.MessageTypeOffer},
		{"ack (reserved)", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{cid, dhcpv4.WithClientIP(ipOf("10.0.0.10"))}, dhcpv4.MessageTypeAck},
		{"nak", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{cid, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipOf("192.168.1.5")))}, dhcpv4.MessageTypeNak},
		{"relayed offer with 82", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{cid, relay, agent}, dhcpv4.MessageTypeOffer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply, r, why := f.ask(t, tc.mt, macReserved, tc.mods...)
			if reply == nil || reply.MessageType() != tc.want {
				t.Fatalf("got %v (%s), want %s", reply, why, tc.want)
			}
			if got := reply.Options.Get(dhcpv4.OptionClientIdentifier); !bytes.Equal(got, id) {
				t.Errorf("option 61 = %x, want %x", got, id)
			}
			codes := optionCodes(r.payload)
			if slices.Contains(codes, 82) && codes[len(codes)-1] != 82 {
				t.Errorf("option 82 not last: %v", codes)
			}
		})
	}
	if reply, _, _ := f.ask(t, dhcpv4.MessageTypeDiscover, macReserved); reply.Options.Has(dhcpv4.OptionClientIdentifier) {
		t.Error("option 61 sent to a client that sent none")
	}
}

// overloaded builds a request whose option 52 puts fileOpts in the file field and snameOpts in
// the sname field (each ends with END); nil leaves a field alone.
func overloaded(t *testing.T, mt dhcpv4.MessageType, mac net.HardwareAddr, fileOpts, snameOpts []byte, mods ...dhcpv4.Modifier) []byte {
	t.Helper()
	var v byte
	if fileOpts != nil {
		v |= 1
	}
	if snameOpts != nil {
		v |= 2
	}
	mods = append([]dhcpv4.Modifier{dhcpv4.WithMessageType(mt), dhcpv4.WithHwAddr(mac),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionOptionOverload, []byte{v}))}, mods...)
	m, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	b := m.ToBytes()
	copy(b[fileOffset:fileOffset+fileLen], append(fileOpts, 255))
	if snameOpts != nil {
		copy(b[snameOffset:fileOffset], append(snameOpts, 255))
	}
	return b
}

// RFC 2131 §4.1, RFC 2132 §9.3: options in the file and sname fields of a request (option 52 =
// 1, 2, 3) count like the others: a SELECTING request whose server identifier and requested
// address sit in file, and whose parameter request list sits in sname, is understood.
func TestRFC2132_9_3_OverloadedRequestIsRead(t *testing.T) {
	f := newFixture(t, testConfig)
	offer, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown)
	if offer == nil {
		t.Fatalf("no offer: %s", why)
	}
	ip := offer.YourIPAddr.To4()
	file := append([]byte{54, 4, 10, 0, 0, 1, 50, 4}, ip...)
	for _, tc := range []struct {
		name        string
		file, sname []byte
	}{
		{"52 = 1: server id and address in file", file, nil},
		{"52 = 2: server id and address in sname", nil, file},
		{"52 = 3: and option 55 in sname", file, []byte{55, 2, 1, 150}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ack, _, why := f.askRaw(t, overloaded(t, dhcpv4.MessageTypeRequest, macUnknown, tc.file, tc.sname))
			if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(ip) {
				t.Fatalf("want an ACK for %s, got %v (%s)", ip, ack, why)
			}
			if tc.sname != nil && tc.file != nil && ack.Options.Get(dhcpv4.GenericOptionCode(150)) == nil {
				t.Error("option 150, asked for in the sname field, not sent")
			}
		})
	}
	// A bad overload value or options running off the field: the request is malformed, no crash.
	b := overloaded(t, dhcpv4.MessageTypeRequest, macUnknown, file, nil)
	for i := 240; i < len(b)-2; i++ {
		if b[i] == 52 && b[i+1] == 1 {
			b[i+2] = 7
		}
	}
	if _, err := parseMessage(b); err == nil {
		t.Error("option 52 = 7 accepted")
	}
	b = overloaded(t, dhcpv4.MessageTypeRequest, macUnknown, append(bytes.Repeat([]byte{1}, 127), 200), nil)
	if _, err := parseMessage(b); err == nil {
		t.Error("an option running past the end of the file field accepted")
	}
}

// PXE specification 2.1 §2.2.5 (and dnsmasq): the proxyDHCP ACK to a REQUEST sent to port 4011
// leaves from port 4011, back to where the request came from; the OFFER to a port 67 DISCOVER
// is broadcast as before.
func TestPXE_ProxyAckLeavesFromPort4011(t *testing.T) {
	f := newFixture(t, "interface: {mode: proxy, server_ip: 10.0.0.1}\nsubnets: [{cidr: 10.0.0.0/24}]\n")
	mods := append(pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"), dhcpv4.WithClientIP(ipOf("10.0.0.50")))
	ack, r, why := f.askPort(t, 4011, dhcpv4.MessageTypeRequest, macUnknown, mods...)
	if ack == nil {
		t.Fatalf("no ACK: %s", why)
	}
	if r.from != 4011 || r.udp.String() != "0.0.0.0:68" {
		t.Errorf("port 4011 ACK from port %d to %s; want from 4011 to the request's source", r.from, r.udp)
	}
	_, r, _ = f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown, pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016")...)
	if r == nil || r.from != 0 || r.rawIP != broadcastIP {
		t.Errorf("port 67 proxy OFFER: %+v", r)
	}
}

// RFC 2131 §4.3.2, INIT-REBOOT: with no record of the client the server MUST remain silent,
// unless the address is wrong for the client's network (NAK); with a record, the right address
// is ACKed and another NAKed. dhcp.authoritative (Kea's switch) answers unknown clients too:
// ACK when the address is free for them, NAK when not.
func TestRFC2131_4_3_2_InitRebootWithoutRecord(t *testing.T) {
	req := func(s string) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipOf(s))) }
	for _, tc := range []struct {
		name          string
		authoritative bool
		mac           net.HardwareAddr
		addr          string
		want          string
	}{
		{"no record, free pool address: silent (was ACKed)", false, macOther, "10.0.0.101", dropNoRecord},
		{"no record, another client's address: silent", false, macOther, "10.0.0.100", dropNoRecord},
		{"no record, wrong network: NAK", false, macOther, "192.168.1.5", "NAK"},
		{"record, its address: ACK", false, macUnknown, "10.0.0.100", "ACK"},
		{"record, another address: NAK", false, macUnknown, "10.0.0.101", "NAK"},
		{"reserved MAC (the reservation is its record): ACK", false, macReserved, "10.0.0.10", "ACK"},
		{"authoritative, no record, free address: ACK", true, macOther, "10.0.0.101", "ACK"},
		{"authoritative, no record, another client's address: NAK", true, macOther, "10.0.0.100", "NAK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := testConfig
			if tc.authoritative {
				conf = strings.Replace(conf, "interface:", "dhcp: {authoritative: true}\ninterface:", 1)
			}
			f := newFixture(t, conf)
			// macUnknown holds 10.0.0.100.
			if a, _, why := f.ask(t, dhcpv4.MessageTypeRequest, macUnknown, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ipOf("10.0.0.1"))),
				req(mustOffer(t, f, macUnknown))); a == nil || a.YourIPAddr.String() != "10.0.0.100" {
				t.Fatalf("setup: %v %s", a, why)
			}
			reply, _, why := f.ask(t, dhcpv4.MessageTypeRequest, tc.mac, req(tc.addr))
			got := why
			if reply != nil {
				got = typeName(reply.MessageType())
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func mustOffer(t *testing.T, f *fixture, mac net.HardwareAddr) string {
	t.Helper()
	o, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, mac)
	if o == nil {
		t.Fatalf("no offer: %s", why)
	}
	return o.YourIPAddr.String()
}

// RFC 2131 §4.3.2, SELECTING: the requested address must be the one offered to this client; a
// REQUEST naming this server for an address it never offered to it is NAKed, not bound.
func TestRFC2131_4_3_2_SelectingOnlyWhatWasOffered(t *testing.T) {
	f := newFixture(t, testConfig)
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ipOf("10.0.0.1")))
	req := func(s string) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipOf(s))) }
	// No DISCOVER at all: a free pool address is not bound.
	nak, _, why := f.ask(t, dhcpv4.MessageTypeRequest, macOther, sid, req("10.0.0.102"))
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("SELECTING without an offer: %v %s, want NAK", nak, why)
	}
	if l, ok := f.leases.Lookup(macOther, "10.0.0.0/24"); ok && l.State == lease.Bound {
		t.Errorf("bound without an offer: %+v", l)
	}
	// Offered one address, asks for another.
	offered := mustOffer(t, f, macOther)
	other := "10.0.0.101"
	if offered == other {
		other = "10.0.0.102"
	}
	if nak, _, _ := f.ask(t, dhcpv4.MessageTypeRequest, macOther, sid, req(other)); nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak {
		t.Errorf("SELECTING another address than offered: %v, want NAK", nak)
	}
	// The offered one binds.
	if ack, _, why := f.ask(t, dhcpv4.MessageTypeRequest, macOther, sid, req(offered)); ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("SELECTING the offered address: %v %s, want ACK", ack, why)
	}
}

// dora binds mac (with modifiers, e.g. option 61) through DISCOVER and REQUEST; the address.
func (f *fixture) dora(t *testing.T, mac net.HardwareAddr, mods ...dhcpv4.Modifier) string {
	t.Helper()
	o, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, mac, mods...)
	if o == nil {
		t.Fatalf("no offer: %s", why)
	}
	a, _, why := f.ask(t, dhcpv4.MessageTypeRequest, mac, append(mods, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ipOf("10.0.0.1"))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(o.YourIPAddr)))...)
	if a == nil || a.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("no ACK for %s: %v %s", o.YourIPAddr, a, why)
	}
	return a.YourIPAddr.String()
}

// RFC 2131 §4.2: pool leases are keyed by client identifier: two identifiers on one MAC are two
// clients. The boot stages of one machine stay on one address: firmware PXE (no 61), iPXE
// (01+MAC) and then Linux (a DUID) find the lease their MAC holds without an identifier. With
// dhcp.ignore_client_id every identifier on a MAC is that MAC.
func TestRFC2131_4_2_ClientIdentifierKeysPoolLeases(t *testing.T) {
	id := func(b ...byte) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptClientIdentifier(b)) }
	duidA, duidB := id(0xff, 0, 0, 0, 1, 0, 4, 0xaa), id(0xff, 0, 0, 0, 1, 0, 4, 0xbb)
	ipxe := id(append([]byte{1}, macUnknown...)...)

	f := newFixture(t, testConfig)
	firmware := f.dora(t, macUnknown)
	if got := f.dora(t, macUnknown, ipxe); got != firmware {
		t.Errorf("iPXE got %s, firmware %s", got, firmware)
	}
	if got := f.dora(t, macUnknown, duidA); got != firmware {
		t.Errorf("Linux (DUID) got %s, firmware and iPXE %s", got, firmware)
	}
	if got := f.dora(t, macUnknown, duidB); got == firmware {
		t.Errorf("a second identifier on the MAC got the first one's %s", got)
	}

	f = newFixture(t, strings.Replace(testConfig, "interface:", "dhcp: {ignore_client_id: true}\ninterface:", 1))
	a := f.dora(t, macUnknown, duidA)
	if b := f.dora(t, macUnknown, duidB); b != a {
		t.Errorf("ignore_client_id: identifiers on one MAC got %s and %s", a, b)
	}
}

// Reservations match by MAC whatever identifier each boot stage sends: one machine, one
// reserved address, from firmware to the installed system.
func TestReservationAcrossBootStageIdentifiers(t *testing.T) {
	f := newFixture(t, testConfig)
	for _, mods := range [][]dhcpv4.Modifier{
		pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"), // firmware: no 61
		append(pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"), dhcpv4.WithUserClass("iPXE", false),
			dhcpv4.WithOption(dhcpv4.OptClientIdentifier(append([]byte{1}, macReserved...)))),
		{dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{0xff, 0, 0, 0, 1, 0, 4, 0xaa}))}, // Linux: a DUID
		{dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{0xff, 0, 0, 0, 2, 0, 4, 0xbb}))}, // another OS
	} {
		if got := f.dora(t, macReserved, mods...); got != "10.0.0.10" {
			t.Errorf("reserved machine got %s, want 10.0.0.10", got)
		}
	}
}

// The contract for the XDP fast path's echo of option 61 (RFC 6842 §3), as executable bytes:
// the Go reply to a request with option 61 is the fast path's pre-rendered area with
// "61, length, the request's identifier unaltered" inserted before END, then zero padding to
// the 300-byte BOOTP minimum. A fast path that cannot do that within its 308-byte area must
// pass such requests to the Go path.
func TestRFC6842_FastPathEchoContract(t *testing.T) {
	f := newFixture(t, testConfig)
	var plain, boot []byte
	for _, e := range f.st.fastReservations() {
		if e.MAC.String() == macReserved.String() {
			plain = e.Area
			for _, b := range e.Boot {
				if b.Arch == uint16(iana.EFI_X86_64) {
					boot = b.Area
				}
			}
		}
	}
	if plain == nil || boot == nil {
		t.Fatal("no fast path entry for the reserved MAC")
	}
	id := []byte{0xff, 0, 0, 0, 1, 0, 4, 0xaa}
	cid := dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id))
	for _, tc := range []struct {
		name string
		area []byte
		mods []dhcpv4.Modifier
	}{
		{"plain DHCP", plain, []dhcpv4.Modifier{cid}},
		{"firmware PXE", boot, append(pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003000"), cid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, macReserved, tc.mods...)
			if r == nil {
				t.Fatalf("no reply: %s", why)
			}
			if d := cmp.Diff(echoClientID(t, tc.area, id), r.payload[headerLen+cookieLen:]); d != "" {
				t.Errorf("Go reply options (-area with 61 inserted +go):\n%s", d)
			}
		})
	}
}

// echoClientID is what the fast path must send: area with option 61 inserted before END.
func echoClientID(t *testing.T, area, id []byte) []byte {
	t.Helper()
	end := 0
	for end < len(area) && area[end] != 255 {
		if area[end] == 0 {
			end++
			continue
		}
		end += 2 + int(area[end+1])
	}
	if end >= len(area) {
		t.Fatalf("area without END: %x", area)
	}
	out := append(append(append([]byte(nil), area[:end]...), 61, byte(len(id))), id...)
	out = append(out, 255)
	for len(out) < minReplyLen-headerLen-cookieLen {
		out = append(out, 0)
	}
	return out
}

// When even the options that must be sent (the echoed 61 and 82, the lease) exceed what the
// client accepts, there is no conformant reply: the request is dropped as too_large, no crash.
func TestRFC2131_4_3_1_EssentialsTooLargeIsDropped(t *testing.T) {
	f := newFixture(t, testConfig)
	long := bytes.Repeat([]byte{7}, 255)
	_, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown, dhcpv4.WithGatewayIP(ipOf("10.20.0.1")),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(long)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, append([]byte{1, 253}, long[:253]...))))
	if why != dropTooLarge {
		t.Errorf("got %q, want %s", why, dropTooLarge)
	}
	// The same client accepting 1500 bytes is answered.
	o, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown, dhcpv4.WithGatewayIP(ipOf("10.20.0.1")),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(long)), dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1500)),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, append([]byte{1, 253}, long[:253]...))))
	if o == nil {
		t.Errorf("1500-byte client: %s", why)
	}
}

// Essential options that fit only without option 52's 3 bytes: the reply goes without
// overload, and the rest is dropped.
func TestRFC2131_4_3_1_EssentialsFitOnlyWithoutOverload(t *testing.T) {
	f := newFixture(t, testConfig)
	// 36 bytes of lease, mask and router (54, 51, 58, 59, 1, 3), 202 of 61, 65 of 82: 303 of 304.
	id := bytes.Repeat([]byte{7}, 200)
	agent := append([]byte{1, 61}, bytes.Repeat([]byte{8}, 61)...)
	o, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown, dhcpv4.WithGatewayIP(ipOf("10.20.0.1")),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier(id)), dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionRelayAgentInformation, agent)))
	if o == nil {
		t.Fatalf("no offer: %s", why)
	}
	if o.Options.Has(dhcpv4.OptionOptionOverload) || len(r.droppedOptions) == 0 || len(r.payload) > 548 {
		t.Errorf("option 52 %x, dropped %v, %d bytes", o.Options.Get(dhcpv4.OptionOptionOverload), r.droppedOptions, len(r.payload))
	}
	if !bytes.Equal(o.Options.Get(dhcpv4.OptionClientIdentifier), id) || !bytes.Equal(o.Options.Get(dhcpv4.OptionRelayAgentInformation), agent) {
		t.Error("echoes lost")
	}
}
