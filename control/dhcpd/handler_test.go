package dhcpd

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/lease"
)

const testConfig = `
interface: {mode: authoritative, server_ip: 10.0.0.1}
subnets:
  - cidr: 10.0.0.0/24
    pools: ["10.0.0.100-10.0.0.102"]
    lease_time: 10m
    relays: [10.0.0.254]
    options:
      router: 10.0.0.1
      dns: [10.0.0.53, 10.0.0.54]
      domain: rack.test
      custom:
        - {code: 150, type: ip, value: 10.0.0.9}
        - {code: 224, type: string, value: always-sent, always: true}
  - cidr: 10.20.0.0/24
    pools: ["10.20.0.100-10.20.0.110"]
    relays: [10.20.0.1]
    options: {router: 10.20.0.1}
reservations:
  - {mac: "02:00:00:00:00:0a", ip: 10.0.0.10, hostname: node10}
  - {mac: "02:00:00:00:00:0b", ip: 10.0.0.11, hostname: node11, boot: {efi_x64: special.efi}}
`

var (
	macReserved = net.HardwareAddr{2, 0, 0, 0, 0, 0x0a}
	macNode11   = net.HardwareAddr{2, 0, 0, 0, 0, 0x0b}
	macUnknown  = net.HardwareAddr{2, 0, 0, 0, 1, 1}
	macOther    = net.HardwareAddr{2, 0, 0, 0, 1, 2}
	serverIP    = netip.MustParseAddr("10.0.0.1")
)

type fixture struct {
	from        netip.AddrPort // the requests' source; unset: the client's own (or giaddr's)
	h           *handler
	st          *state
	leases      *lease.Store
	lastPayload []byte // the last reply's bytes, as the server would send them
}

func newFixture(t testing.TB, yaml string) *fixture {
	t.Helper()
	conf, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if err := conf.Validate(); err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: newState(conf, serverIP, "http://10.0.0.1:8080")}
	f.h = &handler{log: slog.New(slog.DiscardHandler), now: time.Now, poolFull: func(string) {}, circuits: newCircuits(), declines: newDeclines()}
	if conf.Interface.Mode != config.ModeProxy {
		f.leases, err = lease.Open(lease.Config{Path: filepath.Join(t.TempDir(), "leases.db"),
			Pools: LeasePools(conf), Reserved: ReservedIPs(conf)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.leases.Close() })
		f.h.leases = f.leases
	}
	return f
}

// ask sends one request through the handler and parses the reply back.
func (f *fixture) ask(t *testing.T, mt dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) (*dhcpv4.DHCPv4, *response, string) {
	t.Helper()
	return f.askPort(t, 67, mt, mac, mods...)
}

func (f *fixture) askPort(t *testing.T, port uint16, mt dhcpv4.MessageType, mac net.HardwareAddr, mods ...dhcpv4.Modifier) (*dhcpv4.DHCPv4, *response, string) {
	t.Helper()
	mods = append([]dhcpv4.Modifier{dhcpv4.WithMessageType(mt), dhcpv4.WithHwAddr(mac)}, mods...)
	m, err := dhcpv4.New(mods...)
	if err != nil {
		t.Fatal(err)
	}
	// Round-trip through bytes, as the server sees it.
	m, err = parseMessage(m.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	// A relay sends from its giaddr here, as ISC dhcrelay on a one-subnet router does.
	src := netip.MustParseAddrPort("0.0.0.0:68")
	if g := ip4(m.GatewayIPAddr); g.IsValid() && !g.IsUnspecified() {
		src = netip.AddrPortFrom(g, 67)
	}
	if f.from.IsValid() {
		src = f.from
	}
	r, why := f.h.handle(f.st, &request{msg: m, mac: m.ClientHWAddr, src: src, port: port})
	if r == nil {
		return nil, nil, why
	}
	f.lastPayload = r.payload
	if len(r.payload) < minReplyLen {
		t.Fatalf("reply of %d bytes, below the BOOTP minimum", len(r.payload))
	}
	reply, err := parseMessage(r.payload)
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	if reply.TransactionID != m.TransactionID {
		t.Fatalf("xid %v, want %v", reply.TransactionID, m.TransactionID)
	}
	return reply, r, ""
}

func ipOf(s string) net.IP { return net.ParseIP(s).To4() }

func TestDiscoverReservedGetsItsAddressAndOptions(t *testing.T) {
	f := newFixture(t, testConfig)
	reply, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, macReserved,
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter))
	if reply == nil {
		t.Fatalf("no reply: %s", why)
	}
	got := map[string]string{
		"type":     reply.MessageType().String(),
		"yiaddr":   reply.YourIPAddr.String(),
		"mask":     net.IP(reply.SubnetMask()).String(),
		"router":   reply.Router()[0].String(),
		"dns":      reply.DNS()[1].String(),
		"hostname": reply.HostName(),
		"domain":   reply.DomainName(),
		"lease":    reply.IPAddressLeaseTime(0).String(),
		"t1":       reply.IPAddressRenewalTime(0).String(),
		"t2":       reply.IPAddressRebindingTime(0).String(),
		"serverid": reply.ServerIdentifier().String(),
		"bcast":    reply.BroadcastAddress().String(),
		"dest":     r.rawIP.String() + " at " + r.rawMAC.String(),
	}
	want := map[string]string{
		"type": "OFFER", "yiaddr": "10.0.0.10", "mask": "255.255.255.0", "router": "10.0.0.1",
		"dns": "10.0.0.54", "hostname": "node10", "domain": "rack.test", "lease": "10m0s",
		"t1": "5m0s", "t2": "8m45s", "serverid": "10.0.0.1", "bcast": "10.0.0.255",
		"dest": "10.0.0.10 at 02:00:00:00:00:0a",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("offer (-want +got):\n%s", d)
	}
	if reply.Options.Has(dhcpv4.GenericOptionCode(150)) {
		t.Error("option 150 sent without being requested")
	}
	if string(reply.Options.Get(dhcpv4.GenericOptionCode(224))) != "always-sent" {
		t.Error("option 224 (always) missing")
	}
}

func TestCustomOptionOnlyWhenRequested(t *testing.T) {
	f := newFixture(t, testConfig)
	reply, _, _ := f.ask(t, dhcpv4.MessageTypeDiscover, macReserved,
		dhcpv4.WithRequestedOptions(dhcpv4.GenericOptionCode(150)))
	if got := net.IP(reply.Options.Get(dhcpv4.GenericOptionCode(150))).String(); got != "10.0.0.9" {
		t.Errorf("option 150 = %s, want 10.0.0.9", got)
	}
}

func TestAddressing(t *testing.T) {
	f := newFixture(t, testConfig)
	for _, tc := range []struct {
		name string
		mt   dhcpv4.MessageType
		mods []dhcpv4.Modifier
		want string
	}{
		{"no address: yiaddr at chaddr", dhcpv4.MessageTypeDiscover, nil, "raw 10.0.0.10 02:00:00:00:00:0a"},
		{"broadcast bit", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{dhcpv4.WithBroadcast(true)}, "raw 255.255.255.255 ff:ff:ff:ff:ff:ff"},
		{"renewing: ciaddr", dhcpv4.MessageTypeRequest, []dhcpv4.Modifier{dhcpv4.WithClientIP(ipOf("10.0.0.10"))}, "udp 10.0.0.10:68"},
		{"relay: giaddr port 67", dhcpv4.MessageTypeDiscover, []dhcpv4.Modifier{dhcpv4.WithGatewayIP(ipOf("10.0.0.254"))}, "udp 10.0.0.254:67"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, r, why := f.ask(t, tc.mt, macReserved, tc.mods...)
			if r == nil {
				t.Fatalf("no reply: %s", why)
			}
			got := "udp " + r.udp.String()
			if !r.udp.IsValid() {
				got = "raw " + r.rawIP.String() + " " + r.rawMAC.String()
			}
			if got != tc.want {
				t.Errorf("destination %s, want %s", got, tc.want)
			}
		})
	}
}

// A pool client's whole life: DISCOVER, REQUEST (selecting), renew, release, and back.
func TestPoolClientLifecycle(t *testing.T) {
	f := newFixture(t, testConfig)
	offer, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown)
	if offer == nil {
		t.Fatalf("no offer: %s", why)
	}
	ip := offer.YourIPAddr
	if !strings.HasPrefix(ip.String(), "10.0.0.10") || ip.String() == "10.0.0.10" {
		t.Fatalf("offered %s, want the pool 10.0.0.100-102", ip)
	}
	// Another client is offered another address while the first offer is held.
	if o2, _, _ := f.ask(t, dhcpv4.MessageTypeDiscover, macOther); o2 == nil || o2.YourIPAddr.Equal(ip) {
		t.Fatalf("second client offered %v, first holds %s", o2, ip)
	}
	ack, _, why := f.ask(t, dhcpv4.MessageTypeRequest, macUnknown,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ipOf("10.0.0.1"))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(ip) {
		t.Fatalf("selecting: %v (%s)", ack, why)
	}
	if l, ok := f.leases.Lookup(macUnknown, "10.0.0.0/24"); !ok || l.State != lease.Bound {
		t.Fatalf("no bound lease after ACK: %+v", l)
	}
	renew, _, _ := f.ask(t, dhcpv4.MessageTypeRequest, macUnknown, dhcpv4.WithClientIP(ip))
	if renew == nil || renew.MessageType() != dhcpv4.MessageTypeAck || !renew.ClientIPAddr.Equal(ip) {
		t.Fatalf("renew: %v", renew)
	}
	// The address is someone else's: another MAC asking for it in INIT-REBOOT gets a NAK.
	nak, r, _ := f.ask(t, dhcpv4.MessageTypeRequest, macOther, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)))
	if nak == nil || nak.MessageType() != dhcpv4.MessageTypeNak || r.rawIP != broadcastIP {
		t.Fatalf("request for another's address: %v", nak)
	}
	if _, _, why := f.ask(t, dhcpv4.MessageTypeRelease, macUnknown, dhcpv4.WithClientIP(ip)); why != dropNoReply {
		t.Fatalf("release: %s", why)
	}
	if l, _ := f.leases.Lookup(macUnknown, "10.0.0.0/24"); l.State != lease.Released {
		t.Fatalf("after release: %s", l.State)
	}
	// The client comes back and gets its previous address.
	if again, _, _ := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown); !again.YourIPAddr.Equal(ip) {
		t.Errorf("returning client offered %s, had %s", again.YourIPAddr, ip)
	}
}

func TestRequestStates(t *testing.T) {
	f := newFixture(t, testConfig)
	sid := func(s string) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ipOf(s))) }
	req := func(s string) dhcpv4.Modifier { return dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipOf(s))) }
	for _, tc := range []struct {
		name string
		mac  net.HardwareAddr
		mods []dhcpv4.Modifier
		want string // reply type, or the drop reason
	}{
		{"selecting us", macReserved, []dhcpv4.Modifier{sid("10.0.0.1"), req("10.0.0.10")}, "ACK"},
		{"selecting another server", macReserved, []dhcpv4.Modifier{sid("10.0.0.2"), req("10.0.0.10")}, dropOtherServer},
		{"init-reboot right address", macReserved, []dhcpv4.Modifier{req("10.0.0.10")}, "ACK"},
		{"init-reboot reserved MAC, other address", macReserved, []dhcpv4.Modifier{req("10.0.0.100")}, "NAK"},
		{"init-reboot wrong network", macUnknown, []dhcpv4.Modifier{req("192.168.1.5")}, "NAK"},
		{"init-reboot another's reservation, no record", macUnknown, []dhcpv4.Modifier{req("10.0.0.11")}, dropNoRecord},
		{"init-reboot outside the pools, no record", macUnknown, []dhcpv4.Modifier{req("10.0.0.50")}, dropNoRecord},
		{"rebinding reserved", macReserved, []dhcpv4.Modifier{dhcpv4.WithClientIP(ipOf("10.0.0.10")), dhcpv4.WithBroadcast(true)}, "ACK"},
		{"no address at all", macUnknown, nil, dropMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply, _, why := f.ask(t, dhcpv4.MessageTypeRequest, tc.mac, tc.mods...)
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

func TestDeclineHoldsTheAddress(t *testing.T) {
	f := newFixture(t, testConfig)
	offer, _, _ := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown)
	ip := offer.YourIPAddr
	f.ask(t, dhcpv4.MessageTypeRequest, macUnknown, dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ipOf("10.0.0.1"))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)))
	if _, _, why := f.ask(t, dhcpv4.MessageTypeDecline, macUnknown, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip))); why != dropNoReply {
		t.Fatalf("decline: %s", why)
	}
	for i := 0; i < 2; i++ {
		o, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{2, 0, 0, 0, 9, byte(i)})
		if o == nil {
			t.Fatalf("no offer: %s", why)
		}
		if o.YourIPAddr.Equal(ip) {
			t.Fatalf("declined %s offered again", ip)
		}
	}
	// 3 pool addresses, one declined, two offered: the pool is now exhausted.
	if _, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{2, 0, 0, 0, 9, 9}); why != dropPoolExhausted {
		t.Errorf("exhausted pool: got %q", why)
	}
}

func TestRelayedClient(t *testing.T) {
	f := newFixture(t, testConfig)
	agent := dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte("port7")))
	offer, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown,
		dhcpv4.WithGatewayIP(ipOf("10.20.0.1")), dhcpv4.WithOption(agent))
	if offer == nil {
		t.Fatalf("no offer: %s", why)
	}
	if !strings.HasPrefix(offer.YourIPAddr.String(), "10.20.0.1") || offer.Router()[0].String() != "10.20.0.1" {
		t.Errorf("relayed client offered %s router %v", offer.YourIPAddr, offer.Router())
	}
	if r.udp.String() != "10.20.0.1:67" || !offer.GatewayIPAddr.Equal(ipOf("10.20.0.1")) {
		t.Errorf("reply to %s giaddr %s", r.udp, offer.GatewayIPAddr)
	}
	if d := cmp.Diff(agent.Value.ToBytes(), offer.Options.Get(dhcpv4.OptionRelayAgentInformation)); d != "" {
		t.Errorf("option 82 not echoed unchanged:\n%s", d)
	}
	// RFC 3046: the echoed option is the last before END.
	p := r.payload
	if i := lastOption(p); i != 82 {
		t.Errorf("last option %d, want 82", i)
	}
	if _, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown, dhcpv4.WithGatewayIP(ipOf("172.16.0.1"))); why != dropNoSubnet {
		t.Errorf("unknown relay: %q, want %s", why, dropNoSubnet)
	}
}

func lastOption(p []byte) uint8 {
	var last uint8
	for o := p[240:]; len(o) >= 2 && o[0] != 255; o = o[2+int(o[1]):] {
		if o[0] == 0 {
			o = o[1:]
			continue
		}
		last = o[0]
	}
	return last
}

func TestInform(t *testing.T) {
	f := newFixture(t, testConfig)
	ack, r, _ := f.ask(t, dhcpv4.MessageTypeInform, macUnknown, dhcpv4.WithClientIP(ipOf("10.0.0.77")))
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatal("no ACK to INFORM")
	}
	if !ack.YourIPAddr.IsUnspecified() || ack.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
		t.Errorf("INFORM ACK carries an address or a lease: yiaddr %s", ack.YourIPAddr)
	}
	if r.udp.String() != "10.0.0.77:68" || ack.DNS() == nil {
		t.Errorf("INFORM ACK to %s, dns %v", r.udp, ack.DNS())
	}
}

func TestReservationModeIgnoresUnknown(t *testing.T) {
	f := newFixture(t, strings.Replace(testConfig, "mode: authoritative", "mode: reservation", 1))
	if _, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown); why != dropUnknownMAC {
		t.Errorf("unknown MAC: %q", why)
	}
	if o, _, _ := f.ask(t, dhcpv4.MessageTypeDiscover, macReserved); o == nil || o.YourIPAddr.String() != "10.0.0.10" {
		t.Errorf("reserved MAC: %v", o)
	}
}

func pxe(arch iana.Arch, vendor string) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendor)),
		dhcpv4.WithOption(dhcpv4.OptClientArch(arch)),
	}
}

func TestBootFileByFirmware(t *testing.T) {
	f := newFixture(t, testConfig)
	ipxe := append(pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"), dhcpv4.WithUserClass("iPXE", false))
	for _, tc := range []struct {
		name   string
		mac    net.HardwareAddr
		mods   []dhcpv4.Modifier
		file   string
		vendor string
	}{
		{"BIOS", macReserved, pxe(iana.INTEL_X86PC, "PXEClient:Arch:00000:UNDI:002001"), "undionly.kpxe", "PXEClient"},
		{"EFI x64", macReserved, pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"), "ipxe.efi", "PXEClient"},
		{"EFI BC", macReserved, pxe(iana.EFI_BC, "PXEClient:Arch:00009:UNDI:003016"), "ipxe.efi", "PXEClient"},
		{"ARM64", macReserved, pxe(iana.EFI_ARM64, "PXEClient:Arch:00011:UNDI:003000"), "ipxe-arm64.efi", "PXEClient"},
		{"per-host override", macNode11, pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"), "special.efi", "PXEClient"},
		{"HTTP boot", macReserved, pxe(iana.EFI_X86_64_HTTP, "HTTPClient:Arch:00016:UNDI:003000"), "http://10.0.0.1:8080/ipxe/ipxe.efi", "HTTPClient"},
		{"HTTP boot arm64, asking for 66 and 67", macUnknown, append(pxe(iana.EFI_ARM64_HTTP, "HTTPClient:Arch:00019:UNDI:003000"),
			dhcpv4.WithRequestedOptions(dhcpv4.OptionTFTPServerName, dhcpv4.OptionBootfileName)), "http://10.0.0.1:8080/ipxe/ipxe-arm64.efi", "HTTPClient"},
		{"iPXE: its script, not iPXE again", macReserved, ipxe, "http://10.0.0.1:8080/ipxe/boot.ipxe", ""},
		{"plain DHCP: no boot file", macReserved, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, tc.mac, tc.mods...)
			if o == nil {
				t.Fatalf("no offer: %s", why)
			}
			if o.BootFileName != tc.file {
				t.Errorf("file %q, want %q", o.BootFileName, tc.file)
			}
			if tc.file != "" && !o.ServerIPAddr.Equal(ipOf("10.0.0.1")) {
				t.Errorf("siaddr %s", o.ServerIPAddr)
			}
			if got := o.ClassIdentifier(); got != tc.vendor {
				t.Errorf("option 60 %q, want %q", got, tc.vendor)
			}
			// iPXE is told not to wait for proxyDHCP (175.176 = 1); nobody else gets 175.
			want175 := ""
			if strings.HasPrefix(tc.name, "iPXE") {
				want175 = "b00101"
			}
			if got := fmt.Sprintf("%x", o.Options.Get(dhcpv4.GenericOptionCode(175))); got != want175 {
				t.Errorf("option 175 %q, want %q", got, want175)
			}
			if tc.vendor == "PXEClient" && (o.TFTPServerName() != "10.0.0.1" || o.BootFileNameOption() != tc.file) {
				t.Errorf("PXE reply without 66/67: %q %q", o.TFTPServerName(), o.BootFileNameOption())
			}
			// UEFI HTTP boot: the URI in 67 whether asked or not, and no TFTP server (66).
			if tc.vendor == "HTTPClient" && (o.Options.Has(dhcpv4.OptionTFTPServerName) || o.BootFileNameOption() != tc.file) {
				t.Errorf("HTTP boot reply: 66 %q (want none), 67 %q", o.TFTPServerName(), o.BootFileNameOption())
			}
		})
	}
}

func TestProxyMode(t *testing.T) {
	f := newFixture(t, `
interface: {mode: proxy, server_ip: 10.0.0.1}
subnets: [{cidr: 10.0.0.0/24}]
`)
	o, r, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown, pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016")...)
	if o == nil {
		t.Fatalf("no proxy offer: %s", why)
	}
	if !o.YourIPAddr.IsUnspecified() || o.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
		t.Errorf("proxy offer hands out an address: %s", o.YourIPAddr)
	}
	if o.BootFileName != "ipxe.efi" || o.ClassIdentifier() != "PXEClient" || o.Options.Get(dhcpv4.OptionVendorSpecificInformation) == nil {
		t.Errorf("proxy offer: file %q, option 60 %q, option 43 %x", o.BootFileName, o.ClassIdentifier(), o.Options.Get(dhcpv4.OptionVendorSpecificInformation))
	}
	if r.rawIP != broadcastIP {
		t.Errorf("proxy offer to %s, want broadcast", r.rawIP)
	}
	if _, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown); why != dropNotPXE {
		t.Errorf("plain DHCP client in proxy mode: %q, want %s", why, dropNotPXE)
	}
	// The client's REQUEST to port 4011 gets an ACK back where it came from.
	ack, r, _ := f.askPort(t, 4011, dhcpv4.MessageTypeRequest, macUnknown,
		append(pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"), dhcpv4.WithClientIP(ipOf("10.0.0.50")))...)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || ack.BootFileName != "ipxe.efi" || !r.udp.IsValid() {
		t.Errorf("port 4011 request: %v", ack)
	}
	// A proxy offer to a relayed request goes to giaddr: only a configured relay may set it.
	relayed := append(pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016"), dhcpv4.WithGatewayIP(ipOf("10.0.0.254")))
	f.from = netip.MustParseAddrPort("10.0.0.66:67")
	if o, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown, relayed...); o != nil || why != dropUntrustedRelay {
		t.Errorf("proxy mode, giaddr from a host that is no relay: offer %v, %q", o != nil, why)
	}
}

func TestMalformedAndOversized(t *testing.T) {
	f := newFixture(t, testConfig)
	if _, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{1, 2, 3}); why != dropMalformed {
		t.Errorf("short chaddr: %q", why)
	}
	m, _ := dhcpv4.New(dhcpv4.WithHwAddr(macReserved), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))
	m.OpCode = dhcpv4.OpcodeBootReply
	if r, why := f.h.handle(f.st, &request{msg: m, mac: m.ClientHWAddr, port: 67}); r != nil || why != dropMalformed {
		t.Errorf("BOOTREPLY as a request: %q", why)
	}
}

func TestMaxMessageSizeTrimsUnrequested(t *testing.T) {
	big := strings.Repeat("x", 250)
	f := newFixture(t, testConfig+`
  - mac: "02:00:00:00:00:0c"
    ip: 10.0.0.12
    options:
      custom:
        - {code: 200, type: string, value: "`+big+`", always: true}
        - {code: 201, type: string, value: "`+big+`", always: true}
        - {code: 202, type: string, value: "`+big+`", always: true}
`)
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 0x0c}
	o, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, mac, dhcpv4.WithRequestedOptions(dhcpv4.GenericOptionCode(201)))
	if o == nil {
		t.Fatalf("no offer: %s", why)
	}
	if o.Options.Has(dhcpv4.GenericOptionCode(200)) || !o.Options.Has(dhcpv4.GenericOptionCode(201)) {
		t.Errorf("576-byte client: unrequested option kept or requested one dropped")
	}
	o, _, _ = f.ask(t, dhcpv4.MessageTypeDiscover, mac, dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1500)))
	if !o.Options.Has(dhcpv4.GenericOptionCode(200)) {
		t.Errorf("client accepting 1500 bytes did not get every option")
	}
}

// BenchmarkDORA is one pool client's DISCOVER and REQUEST through parsing and the handler, with
// the real lease store (its fsync included): the Go path's cost per exchange, without sockets.
func BenchmarkDORA(b *testing.B) {
	f := newFixture(b, strings.Replace(testConfig, "reservations:", `  - cidr: 10.128.0.0/9
    pools: ["10.128.0.1-10.255.255.254"]
    relays: [10.128.0.1]
reservations:`, 1))
	giaddr := ipOf("10.128.0.1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var i uint32
		seed := uint32(time.Now().UnixNano())
		for pb.Next() {
			i++
			mac := net.HardwareAddr{2, byte(seed >> 8), byte(seed), byte(i >> 16), byte(i >> 8), byte(i)}
			d, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(mac), dhcpv4.WithGatewayIP(giaddr))
			m, _ := dhcpv4.FromBytes(d.ToBytes())
			relay := netip.AddrPortFrom(netip.MustParseAddr("10.128.0.1"), 67)
			r, why := f.h.handle(f.st, &request{msg: m, mac: m.ClientHWAddr, src: relay, port: 67})
			if r == nil {
				b.Fatal(why)
			}
			offer, _ := dhcpv4.FromBytes(r.payload)
			q, _ := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithHwAddr(mac), dhcpv4.WithGatewayIP(giaddr),
				dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ipOf("10.0.0.1"))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))
			m, _ = dhcpv4.FromBytes(q.ToBytes())
			if r, why := f.h.handle(f.st, &request{msg: m, mac: m.ClientHWAddr, src: relay, port: 67}); r == nil {
				b.Fatal(why)
			}
		}
	})
}

// dhcp.max_leases_per_circuit: behind one relay circuit, no more than N MACs get a dynamic
// lease; a MAC that has one keeps it; another circuit is not affected.
func TestLeasesPerCircuitCapped(t *testing.T) {
	f := newFixture(t, strings.Replace(testConfig, "interface:", "dhcp: {max_leases_per_circuit: 2}\ninterface:", 1))
	relay := dhcpv4.WithGatewayIP(ipOf("10.20.0.1"))
	port := func(id string) dhcpv4.Modifier {
		return dhcpv4.WithOption(dhcpv4.OptRelayAgentInfo(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(1), []byte(id))))
	}
	bind := func(mac net.HardwareAddr, circuit string) string {
		o, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, mac, relay, port(circuit))
		if o == nil {
			return why
		}
		a, _, why := f.ask(t, dhcpv4.MessageTypeRequest, mac, relay, port(circuit),
			dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ipOf("10.0.0.1"))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(o.YourIPAddr)))
		if a == nil || a.MessageType() != dhcpv4.MessageTypeAck {
			return "no ack: " + why
		}
		return ""
	}
	for i, mac := range []net.HardwareAddr{{2, 0, 0, 0, 8, 1}, {2, 0, 0, 0, 8, 2}} {
		if why := bind(mac, "port7"); why != "" {
			t.Fatalf("client %d behind port7: %s", i, why)
		}
	}
	if why := bind(net.HardwareAddr{2, 0, 0, 0, 8, 3}, "port7"); why != dropCircuitLimit {
		t.Errorf("third client behind port7: %q, want %s", why, dropCircuitLimit)
	}
	if why := bind(net.HardwareAddr{2, 0, 0, 0, 8, 1}, "port7"); why != "" {
		t.Errorf("a client with a lease behind the full circuit: %s", why)
	}
	if why := bind(net.HardwareAddr{2, 0, 0, 0, 8, 3}, "port8"); why != "" {
		t.Errorf("another circuit: %s", why)
	}
}

// HA: a standby answers reserved machines only; a leader renews only its own share of the pool
// and says nothing (no NAK) to a client renewing an address of another instance's share.
func TestStandbyAndShares(t *testing.T) {
	f := newFixture(t, testConfig)
	f.h.standby.Store(true)
	if reply, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown); reply != nil || why != dropStandby {
		t.Fatalf("standby answered an unknown MAC (%v, %q)", reply, why)
	}
	if reply, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macReserved); reply == nil {
		t.Fatalf("standby did not answer a reserved MAC: %s", why)
	}
	f.h.standby.Store(false)
	if err := f.leases.SetShare(1, 2); err != nil {
		t.Fatal(err)
	}
	offer, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown)
	if offer == nil {
		t.Fatalf("leader did not answer: %s", why)
	}
	mine := netip.MustParseAddr(offer.YourIPAddr.String())
	// The pool's first address is share 0's: a renewal of it by another client goes unanswered.
	first := netip.MustParseAddr("10.0.0.100")
	if mine == first {
		t.Fatalf("share 1 of 2 offered %s, share 0's first address", mine)
	}
	renew := func(mac net.HardwareAddr, ip netip.Addr) (*dhcpv4.DHCPv4, string) {
		r, _, why := f.ask(t, dhcpv4.MessageTypeRequest, mac, dhcpv4.WithClientIP(ip.AsSlice()))
		return r, why
	}
	if reply, why := renew(macOther, first); reply != nil || why != dropOtherShare {
		t.Fatalf("renewal of another share's address: reply %v, %q; want silence", reply, why)
	}
	if reply, why := renew(macUnknown, mine); reply == nil || reply.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("renewal of an address of this share: %v %s", reply, why)
	}
}

// A reservation with netboot: false gets its address and no boot file, from the Go path and
// from the fast path alike (no per-architecture entry, so its PXE requests reach Go).
func TestNetbootFalseGetsNoBootFile(t *testing.T) {
	f := newFixture(t, strings.Replace(testConfig, `{mac: "02:00:00:00:00:0a", ip: 10.0.0.10, hostname: node10}`,
		`{mac: "02:00:00:00:00:0a", ip: 10.0.0.10, hostname: node10, netboot: false}`, 1))
	reply, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macReserved, pxe(iana.EFI_X86_64, "PXEClient:Arch:00007:UNDI:003016")...)
	if reply == nil {
		t.Fatalf("no reply: %s", why)
	}
	if reply.YourIPAddr.String() != "10.0.0.10" || reply.BootFileName != "" || reply.BootFileNameOption() != "" || reply.TFTPServerName() != "" {
		t.Errorf("netboot: false got %s, file %q, option 67 %q, option 66 %q; want its address and no boot file",
			reply.YourIPAddr, reply.BootFileName, reply.BootFileNameOption(), reply.TFTPServerName())
	}
	for _, e := range f.st.fastReservations() {
		if e.MAC.String() == macReserved.String() && len(e.Boot) != 0 {
			t.Errorf("fast path has %d boot entries for a netboot: false reservation", len(e.Boot))
		}
	}
}

// Relayed requests are accepted only from a relay configured for the subnet giaddr selects: a
// host that sets giaddr itself binds nothing, nor does a relay of another subnet.
func TestRelayedOnlyFromTrustedRelays(t *testing.T) {
	f := newFixture(t, testConfig)
	relayed := []dhcpv4.Modifier{dhcpv4.WithGatewayIP(ipOf("10.20.0.1")),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(ipOf("10.0.0.1"))), dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ipOf("10.20.0.105")))}
	for _, from := range []string{"10.0.0.66:67", "10.0.0.254:67", "10.20.0.77:68"} {
		f.from = netip.MustParseAddrPort(from)
		for _, mt := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest} {
			if reply, _, why := f.ask(t, mt, macUnknown, relayed...); reply != nil || why != dropUntrustedRelay {
				t.Errorf("%s relayed by %s: reply %v, %q; want %s", mt, from, reply != nil, why, dropUntrustedRelay)
			}
		}
	}
	if n := len(f.leases.All()); n != 0 {
		t.Fatalf("%d leases bound by untrusted relays", n)
	}
	f.from = netip.MustParseAddrPort("10.20.0.1:67") // the relay configured for 10.20.0.0/24
	offer, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, macUnknown, relayed...)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("the configured relay, DISCOVER: %v %s", offer, why)
	}
	// RFC 2131 §4.3.2: a REQUEST in SELECTING state binds only the address offered.
	selecting := append(relayed[:2:2], dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)))
	if reply, _, why := f.ask(t, dhcpv4.MessageTypeRequest, macUnknown, selecting...); reply == nil || reply.MessageType() != dhcpv4.MessageTypeAck {
		t.Fatalf("the configured relay, REQUEST: %v %s", reply, why)
	}
}

// One MAC declining every address it is offered holds at most dhcp.max_declines_per_mac of
// them out of the pool; the rest stays for other clients, and the limit is counted.
func TestDeclinesPerMACBounded(t *testing.T) {
	f := newFixture(t, strings.Replace(testConfig, `["10.0.0.100-10.0.0.102"]`, `["10.0.0.100-10.0.0.109"]`, 1))
	attacker := net.HardwareAddr{2, 0xba, 0xd0, 0, 0, 1}
	limited := 0
	for range 10 {
		o, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, attacker)
		if o == nil {
			t.Fatalf("attacker got no offer: %s", why)
		}
		_, _, why = f.ask(t, dhcpv4.MessageTypeDecline, attacker, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(o.YourIPAddr)))
		if why == dropDeclineLimit {
			limited++
		}
	}
	declined := 0
	for _, l := range f.leases.All() {
		if l.State == lease.Declined {
			declined++
		}
	}
	if declined != config.DefaultMaxDeclines || limited != 10-config.DefaultMaxDeclines {
		t.Errorf("%d addresses declined, %d declines refused; want %d and %d", declined, limited, config.DefaultMaxDeclines, 10-config.DefaultMaxDeclines)
	}
	// 10 addresses, 3 declined, 1 offered to the attacker: 6 clients still get one each.
	for i := range 6 {
		if o, _, why := f.ask(t, dhcpv4.MessageTypeDiscover, net.HardwareAddr{2, 0, 0, 0, 0x44, byte(i)}); o == nil {
			t.Fatalf("client %d after the decline flood: %s", i, why)
		}
	}
}

func TestDeclinesEndWithTheirHold(t *testing.T) {
	d := newDeclines()
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	now := time.Now()
	end := now.Add(time.Minute)
	for i := range 2 {
		if !d.take(mac, now, end, 2) {
			t.Fatalf("decline %d refused under the limit", i)
		}
	}
	if d.take(mac, now, end, 2) {
		t.Fatal("third decline allowed with a limit of 2")
	}
	d.giveBack(mac, end) // a decline that found no lease of this MAC
	if !d.take(mac, now, end, 2) {
		t.Fatal("a given-back reservation still counted")
	}
	if !d.take(net.HardwareAddr{2, 0, 0, 0, 0, 2}, now, end, 2) {
		t.Fatal("another MAC refused")
	}
	if !d.take(mac, end.Add(time.Second), end.Add(time.Hour), 2) || len(d.m[string(mac)]) != 1 {
		t.Fatalf("declines not forgotten after their hold: %v", d.m)
	}
}
