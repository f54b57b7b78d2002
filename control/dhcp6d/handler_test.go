package dhcp6d

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/netbootd/netbootd/control/config"
)

var (
	serverMAC = net.HardwareAddr{2, 0, 0, 0, 0, 0xfe}
	reserved  = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	stranger  = net.HardwareAddr{2, 0, 0, 0, 0, 2}
)

const testConf = `
interface: {mode: authoritative}
http: {listen: ":8080"}
dhcp6:
  enabled: true
  server_ip: fd00:10::1
  prefix: fd00:10::/64
  pool: {start: "fd00:10::100", end: "fd00:10::101"}
reservations:
  - {mac: "02:00:00:00:00:01", ip: 10.0.0.5, ip6: "fd00:10::5"}
subnets:
  - {cidr: 10.0.0.0/24}
`

func testHandler(t *testing.T, yaml string) (*Handler, *time.Time) {
	t.Helper()
	conf, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	conf.ApplyInterface(netip.MustParseAddr("10.0.0.1"), netip.MustParsePrefix("10.0.0.0/24"))
	if err := conf.Validate(); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	return NewHandler(conf, serverMAC, func() time.Time { return now }), &now
}

type msgOpt func(*dhcpv6.Message)

func withIANA(iaid byte, addrs ...string) msgOpt {
	return func(m *dhcpv6.Message) {
		ia := &dhcpv6.OptIANA{IaId: [4]byte{0, 0, 0, iaid}}
		for _, a := range addrs {
			ia.Options.Add(&dhcpv6.OptIAAddress{IPv6Addr: net.ParseIP(a), PreferredLifetime: time.Hour, ValidLifetime: time.Hour})
		}
		m.AddOption(ia)
	}
}

func withServer(d dhcpv6.DUID) msgOpt {
	return func(m *dhcpv6.Message) { m.AddOption(dhcpv6.OptServerID(d)) }
}
func rapid(m *dhcpv6.Message) {
	m.AddOption(&dhcpv6.OptionGeneric{OptionCode: dhcpv6.OptionRapidCommit})
}
func pxe(arch iana.Arch, class string) msgOpt {
	return func(m *dhcpv6.Message) {
		m.AddOption(dhcpv6.OptClientArchType(arch))
		m.AddOption(&dhcpv6.OptVendorClass{EnterpriseNumber: 343, Data: [][]byte{[]byte(class + ":Arch:00007:UNDI:003016")}})
		m.AddOption(dhcpv6.OptRequestedOption(dhcpv6.OptionBootfileURL))
	}
}
func ipxe(m *dhcpv6.Message) {
	m.AddOption(&dhcpv6.OptUserClass{UserClasses: [][]byte{[]byte("iPXE")}})
	m.AddOption(dhcpv6.OptClientArchType(iana.EFI_X86_64))
}

func message(typ dhcpv6.MessageType, mac net.HardwareAddr, opts ...msgOpt) *dhcpv6.Message {
	m := &dhcpv6.Message{MessageType: typ, TransactionID: dhcpv6.TransactionID{1, 2, 3}}
	m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: mac}))
	for _, o := range opts {
		o(m)
	}
	// Through the wire format: what the server parses is what a client sent.
	out, err := dhcpv6.MessageFromBytes(m.ToBytes())
	if err != nil {
		panic(err)
	}
	return out
}

// iaAddr is the first IA_NA's address and valid lifetime, or its status code.
func iaAddr(m *dhcpv6.Message) (netip.Addr, time.Duration, iana.StatusCode) {
	ia := m.Options.OneIANA()
	if ia == nil {
		return netip.Addr{}, 0, 255
	}
	if st := ia.Options.Status(); st != nil {
		return netip.Addr{}, 0, st.StatusCode
	}
	var last *dhcpv6.OptIAAddress
	for _, a := range ia.Options.Addresses() {
		last = a
	}
	if last == nil {
		return netip.Addr{}, 0, 254
	}
	ip, _ := netip.AddrFromSlice(last.IPv6Addr)
	return ip, last.ValidLifetime, 0
}

func TestIPv6HandlerTable(t *testing.T) {
	h, _ := testHandler(t, testConf)
	ours := h.serverID
	other := &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 9, 9, 9, 9, 9}}
	tests := []struct {
		name     string
		msg      *dhcpv6.Message
		peer     string
		wantType dhcpv6.MessageType // 0: no reply
		wantIP   string
		wantCode iana.StatusCode
		wantBoot string
		wantVC   string
	}{
		{name: "reserved SOLICIT: ADVERTISE of its ip6", msg: message(dhcpv6.MessageTypeSolicit, reserved, withIANA(1)),
			wantType: dhcpv6.MessageTypeAdvertise, wantIP: "fd00:10::5"},
		{name: "reserved REQUEST: REPLY of its ip6", msg: message(dhcpv6.MessageTypeRequest, reserved, withIANA(1), withServer(ours)),
			wantType: dhcpv6.MessageTypeReply, wantIP: "fd00:10::5"},
		{name: "REQUEST for another server: ignored", msg: message(dhcpv6.MessageTypeRequest, reserved, withIANA(1), withServer(other))},
		{name: "REQUEST without server id: dropped", msg: message(dhcpv6.MessageTypeRequest, reserved, withIANA(1))},
		{name: "SOLICIT with a server id: dropped", msg: message(dhcpv6.MessageTypeSolicit, reserved, withIANA(1), withServer(ours))},
		{name: "stranger rapid SOLICIT: REPLY from the pool", msg: message(dhcpv6.MessageTypeSolicit, stranger, withIANA(7), rapid),
			wantType: dhcpv6.MessageTypeReply, wantIP: "fd00:10::100"},
		{name: "stranger RENEW: same address", msg: message(dhcpv6.MessageTypeRenew, stranger, withIANA(7, "fd00:10::100"), withServer(ours)),
			wantType: dhcpv6.MessageTypeReply, wantIP: "fd00:10::100"},
		{name: "RENEW of a wrong address: lifetimes 0 for it, the right one after", msg: message(dhcpv6.MessageTypeRenew, reserved, withIANA(1, "fd00:10::77"), withServer(ours)),
			wantType: dhcpv6.MessageTypeReply, wantIP: "fd00:10::5"},
		{name: "REBIND: REPLY", msg: message(dhcpv6.MessageTypeRebind, reserved, withIANA(1, "fd00:10::5")),
			wantType: dhcpv6.MessageTypeReply, wantIP: "fd00:10::5"},
		{name: "CONFIRM on-link: Success", msg: message(dhcpv6.MessageTypeConfirm, reserved, withIANA(1, "fd00:10::5")),
			wantType: dhcpv6.MessageTypeReply, wantCode: 255},
		{name: "CONFIRM without addresses: no reply", msg: message(dhcpv6.MessageTypeConfirm, reserved, withIANA(1))},
		{name: "firmware PXE x64: tftp URL, no vendor class (EDK2 would go to a boot server)", msg: message(dhcpv6.MessageTypeSolicit, reserved, withIANA(1), pxe(iana.EFI_X86_64, "PXEClient")),
			wantType: dhcpv6.MessageTypeAdvertise, wantIP: "fd00:10::5", wantBoot: "tftp://[fd00:10::1]/ipxe.efi"},
		{name: "firmware HTTP boot: http URL and HTTPClient", msg: message(dhcpv6.MessageTypeSolicit, reserved, withIANA(1), pxe(iana.EFI_X86_64_HTTP, "HTTPClient")),
			wantType: dhcpv6.MessageTypeAdvertise, wantIP: "fd00:10::5", wantBoot: "http://[fd00:10::1]:8080/ipxe/ipxe.efi", wantVC: "HTTPClient"},
		{name: "iPXE: the machine's script", msg: message(dhcpv6.MessageTypeSolicit, reserved, withIANA(1), ipxe),
			wantType: dhcpv6.MessageTypeAdvertise, wantIP: "fd00:10::5", wantBoot: "http://[fd00:10::1]:8080/ipxe/script?mac=02-00-00-00-00-01"},
		{name: "not a client message: dropped", msg: message(dhcpv6.MessageTypeAdvertise, reserved, withIANA(1))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			peer := netip.MustParseAddr("fe80::1")
			res := h.Handle(tc.msg, Client{Peer: peer})
			if tc.wantType == 0 {
				if res.Reply != nil {
					t.Fatalf("answered %s; want no reply (%s)", res.Reply.Summary(), res.Detail)
				}
				return
			}
			if res.Reply == nil {
				t.Fatalf("no reply: %s", res.Detail)
			}
			rep, err := dhcpv6.MessageFromBytes(res.Reply.ToBytes())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Type() != tc.wantType || rep.TransactionID != tc.msg.TransactionID {
				t.Fatalf("reply %s xid %v; want %s", rep.Type(), rep.TransactionID, tc.wantType)
			}
			if sid := rep.Options.ServerID(); sid == nil || !sid.Equal(ours) {
				t.Fatalf("server id %v", sid)
			}
			if cid := rep.Options.ClientID(); cid == nil || !cid.Equal(tc.msg.Options.ClientID()) {
				t.Fatalf("client id %v", cid)
			}
			ip, valid, code := iaAddr(rep)
			if tc.wantIP != "" && (ip.String() != tc.wantIP || valid != time.Hour || code != 0) {
				t.Fatalf("IA_NA %s valid %s status %d; want %s for 1h", ip, valid, code, tc.wantIP)
			}
			if tc.wantCode == 255 && (rep.Options.Status() == nil || rep.Options.Status().StatusCode != iana.StatusSuccess) {
				t.Fatalf("status %v; want Success", rep.Options.Status())
			}
			if got := rep.Options.BootFileURL(); got != tc.wantBoot {
				t.Fatalf("boot file URL %q; want %q", got, tc.wantBoot)
			}
			var vc string
			if v := rep.Options.VendorClasses(); len(v) > 0 && len(v[0].Data) > 0 {
				vc = string(v[0].Data[0])
			}
			if vc != tc.wantVC {
				t.Fatalf("vendor class %q; want %q", vc, tc.wantVC)
			}
		})
	}
}

// A RENEW naming an address that is not the client's returns it with lifetimes 0 beside the
// right one (RFC 8415 §18.3.4).
func TestIPv6RenewWrongAddress(t *testing.T) {
	h, _ := testHandler(t, testConf)
	res := h.Handle(message(dhcpv6.MessageTypeRenew, reserved, withIANA(1, "fd00:10::77"), withServer(h.serverID)), Client{})
	addrs := res.Reply.Options.OneIANA().Options.Addresses()
	if len(addrs) != 2 || !addrs[0].IPv6Addr.Equal(net.ParseIP("fd00:10::77")) || addrs[0].ValidLifetime != 0 ||
		!addrs[1].IPv6Addr.Equal(net.ParseIP("fd00:10::5")) || addrs[1].ValidLifetime != time.Hour {
		t.Fatalf("IA_NA addresses %v", addrs)
	}
}

// The pool runs out, then a RELEASE gives an address back; a DECLINEd one stays out.
func TestIPv6PoolExhaustReleaseDecline(t *testing.T) {
	h, now := testHandler(t, testConf)
	take := func(mac net.HardwareAddr) (netip.Addr, iana.StatusCode) {
		res := h.Handle(message(dhcpv6.MessageTypeSolicit, mac, withIANA(1), rapid), Client{})
		if res.Reply == nil {
			t.Fatalf("no reply for %s: %s", mac, res.Detail)
		}
		ip, _, code := iaAddr(res.Reply)
		return ip, code
	}
	a, _ := take(net.HardwareAddr{2, 1, 0, 0, 0, 1})
	b, _ := take(net.HardwareAddr{2, 1, 0, 0, 0, 2})
	if a.String() != "fd00:10::100" || b.String() != "fd00:10::101" {
		t.Fatalf("pool gave %s and %s", a, b)
	}
	if ip, code := take(net.HardwareAddr{2, 1, 0, 0, 0, 3}); code != iana.StatusNoAddrsAvail {
		t.Fatalf("third client got %s status %d; want NoAddrsAvail", ip, code)
	}
	// The reserved machine still gets its own address with the pool full.
	if ip, _ := take(reserved); ip.String() != "fd00:10::5" {
		t.Fatalf("reserved got %s", ip)
	}
	rel := h.Handle(message(dhcpv6.MessageTypeRelease, net.HardwareAddr{2, 1, 0, 0, 0, 1}, withIANA(1, a.String()), withServer(h.serverID)), Client{})
	if rel.Reply == nil || rel.Reply.Options.Status() == nil || rel.Reply.Options.Status().StatusCode != iana.StatusSuccess {
		t.Fatalf("RELEASE: %v", rel.Reply)
	}
	if ip, _ := take(net.HardwareAddr{2, 1, 0, 0, 0, 3}); ip != a {
		t.Fatalf("after the release the third client got %s; want %s", ip, a)
	}
	dec := h.Handle(message(dhcpv6.MessageTypeDecline, net.HardwareAddr{2, 1, 0, 0, 0, 2}, withIANA(1, b.String()), withServer(h.serverID)), Client{})
	if dec.Reply == nil {
		t.Fatal("DECLINE not answered")
	}
	if ip, code := take(net.HardwareAddr{2, 1, 0, 0, 0, 4}); code != iana.StatusNoAddrsAvail {
		t.Fatalf("a declined address was handed out again at once: %s", ip)
	}
	*now = now.Add(declineHold + time.Second)
	if ip, _ := take(net.HardwareAddr{2, 1, 0, 0, 0, 4}); ip != b {
		t.Fatalf("after the decline hold got %s; want %s", ip, b)
	}
}

// Without a pool, only reserved machines hear an answer; a stranger hears nothing.
func TestIPv6ReservationOnly(t *testing.T) {
	h, _ := testHandler(t, `
dhcp6: {enabled: true, server_ip: "fd00:10::1", prefix: "fd00:10::/64"}
reservations:
  - {mac: "02:00:00:00:00:01", ip: 10.0.0.5, ip6: "fd00:10::5"}
subnets: [{cidr: 10.0.0.0/24}]
`)
	if res := h.Handle(message(dhcpv6.MessageTypeSolicit, stranger, withIANA(1)), Client{}); res.Reply != nil {
		t.Fatalf("a stranger was answered: %s", res.Detail)
	}
	if res := h.Handle(message(dhcpv6.MessageTypeSolicit, reserved, withIANA(1)), Client{}); res.Reply == nil {
		t.Fatalf("the reserved machine was not answered: %s", res.Detail)
	}
}

// A relayed client is known by option 79's MAC; firmware with a DUID-UUID by its EUI-64
// link-local source.
func TestIPv6MACSources(t *testing.T) {
	uuid := &dhcpv6.DUIDUUID{UUID: [16]byte{1}}
	if mac := macOf(uuid, Client{MAC: reserved}); mac.String() != reserved.String() {
		t.Fatalf("relay MAC: %s", mac)
	}
	if mac := macOf(uuid, Client{Peer: netip.MustParseAddr("fe80::ff:fe00:1")}); mac.String() != reserved.String() {
		t.Fatalf("EUI-64 MAC: %s", mac)
	}
	if mac := macOf(uuid, Client{Peer: netip.MustParseAddr("fe80::1234:5678:9abc:def0")}); mac != nil {
		t.Fatalf("a non-EUI-64 address gave MAC %s", mac)
	}
}

func TestIPv6ConfigRefused(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"dhcp6: {enabled: true, pool: {start: fd00::1}}\n", "dhcp6.pool.end"},
		{"dhcp6: {enabled: true, pool: {start: 10.0.0.1, end: 10.0.0.2}}\n", "dhcp6.pool.start"},
		{"dhcp6: {enabled: true, prefix: fd00::/64, pool: {start: fd01::1, end: fd01::2}}\n", "not inside the link prefix"},
		{"dhcp6: {enabled: true, server_ip: fe80::1}\n", "dhcp6.server_ip"},
		{"dhcp6: {enabled: true, pool: {start: fd00::1, end: fd00::2}, pools: 3}\n", "pools"},
		{"dhcp6: {enabled: true}\nreservations: [{mac: 02:00:00:00:00:01, ip: 10.0.0.5, ip6: 10.0.0.6}]\nsubnets: [{cidr: 10.0.0.0/24}]\n", "reservations[0].ip6"},
		{"dhcp6: {enabled: true}\n", "no IPv6 server address"},
	} {
		conf, err := config.Parse([]byte(tc.yaml))
		if err == nil {
			conf.ApplyInterface(netip.MustParseAddr("10.0.0.1"), netip.MustParsePrefix("10.0.0.0/24"))
			err = conf.Validate()
		}
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v; want one naming %q", tc.yaml, err, tc.want)
		}
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// Two DHCPv6 clients of one machine (EDK2's Ip6Config, then its PXE, with another DUID): the
// reserved address moves to the newest, and is never bound to both (RFC 8415 §6.1).
func TestIPv6ReservedAddressMovesToNewestIA(t *testing.T) {
	h, _ := testHandler(t, testConf)
	withDUID := func(typ dhcpv6.MessageType, uuid byte, opts ...msgOpt) *dhcpv6.Message {
		m := &dhcpv6.Message{MessageType: typ, TransactionID: dhcpv6.TransactionID{uuid}}
		m.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDUUID{UUID: [16]byte{uuid}}))
		for _, o := range opts {
			o(m)
		}
		return m
	}
	holders := func() int {
		n := 0
		for _, l := range h.Leases() {
			if l.IP.String() == "fd00:10::5" {
				n++
			}
		}
		return n
	}
	// The same machine: its EUI-64 link-local source names the reserved MAC.
	c := Client{Peer: netip.MustParseAddr("fe80::ff:fe00:1")}
	first := h.Handle(withDUID(dhcpv6.MessageTypeSolicit, 1, withIANA(1), rapid), c)
	if ip, _, _ := iaAddr(first.Reply); ip.String() != "fd00:10::5" {
		t.Fatalf("first client got %s", ip)
	}
	second := h.Handle(withDUID(dhcpv6.MessageTypeSolicit, 2, withIANA(1), pxe(iana.EFI_X86_64, "PXEClient")), c)
	if ip, _, _ := iaAddr(second.Reply); ip.String() != "fd00:10::5" || holders() != 1 {
		t.Fatalf("second client offered %s, %d bindings hold the reservation; want it, and one", ip, holders())
	}
	// The first client's RELEASE now finds no binding: the second keeps the address.
	rel := h.Handle(withDUID(dhcpv6.MessageTypeRelease, 1, withIANA(1, "fd00:10::5"), withServer(h.serverID)), c)
	if _, _, code := iaAddr(rel.Reply); code != iana.StatusNoBinding || holders() != 1 {
		t.Fatalf("first client's release: status %d, %d holders; want NoBinding and the second still holding it", code, holders())
	}
}

// A relay on the served link is answered through the relay (RELAY-REPL, the client known by
// option 79); one forwarding from another link (its link-address outside dhcp6.prefix) is not:
// the address given would not work there.
func TestIPv6Relayed(t *testing.T) {
	h, _ := testHandler(t, testConf)
	s := &Server{h: h, cfg: Config{Logger: slog.New(slog.DiscardHandler)}}
	sol := &dhcpv6.Message{MessageType: dhcpv6.MessageTypeSolicit, TransactionID: dhcpv6.TransactionID{9}}
	sol.AddOption(dhcpv6.OptClientID(&dhcpv6.DUIDUUID{UUID: [16]byte{9}}))
	withIANA(1)(sol)
	relayed := func(link string) []byte {
		fw, err := dhcpv6.EncapsulateRelay(sol, dhcpv6.MessageTypeRelayForward, net.ParseIP(link), net.ParseIP("fe80::9"))
		if err != nil {
			t.Fatal(err)
		}
		fw.AddOption(dhcpv6.OptClientLinkLayerAddress(iana.HWTypeEthernet, reserved))
		return fw.ToBytes()
	}
	relay := &net.UDPAddr{IP: net.ParseIP("fd00:10::2"), Port: 547}
	out := s.serve(relayed("fd00:10::2"), relay)
	if out == nil {
		t.Fatal("a relay on the link was not answered")
	}
	rep, err := dhcpv6.RelayMessageFromBytes(out)
	if err != nil || rep.MessageType != dhcpv6.MessageTypeRelayReply {
		t.Fatalf("answer %v, %v; want a RELAY-REPL", rep, err)
	}
	inner, err := rep.GetInnerMessage()
	if err != nil {
		t.Fatal(err)
	}
	if ip, _, _ := iaAddr(inner); ip.String() != "fd00:10::5" {
		t.Fatalf("relayed reserved client (option 79) offered %s; want its ip6", ip)
	}
	if out := s.serve(relayed("fd00:99::1"), relay); out != nil {
		t.Fatal("a relay from another link was answered")
	}
}
