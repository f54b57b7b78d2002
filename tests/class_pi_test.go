//go:build integration

package tests

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/tests/netns"
)

// piRackConfig: the raspberrypi preset; one Pi reserved (answered by the XDP program), the other
// from the pool (the Go path).
const piRackConfig = rackConfig + `
  - {mac: "dc:a6:32:00:00:01", ip: 10.10.0.21, hostname: pi1}
classes:
  - preset: raspberrypi
`

// pi4Discover is the DISCOVER the Raspberry Pi 4 bootloader broadcasts:
//   - option 60 "PXEClient:Arch:00000:UNDI:002001" and 93 = 0 (x86 BIOS), as Pi netboot guides
//     match it (Kea: growse.com "PXE booting a Raspberry Pi", 2018; ISC dhcpd/VyOS configs that
//     match d8:3a:dd and this vendor class);
//   - option 55 = 1, 3, 43, 60, 66, 67: the list the bootloader asks for (notes on
//     pieeprom-2020-04-16, github.com/malus-brandywine/malus-brandywine Articles/RPi-netboot/docs:
//     "option vendor-encapsulated-options "Raspberry Pi Boot"" and option 66 are what make the
//     bootloader take an offer);
//   - 94 (UNDI 2.1) and 97 (a machine UUID), which PXE firmware sends and dnsmasq echoes.
func pi4Discover(t *testing.T, mac string, xid uint32) *dhcpv4.DHCPv4 {
	t.Helper()
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	// The broadcast flag lets this client, without an address, read the replies on a UDP
	// socket; it changes where the servers send, not what.
	m, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(hw), dhcpv4.WithBroadcast(true),
		dhcpv4.WithTransactionID(dhcpv4.TransactionID{byte(xid >> 24), byte(xid >> 16), byte(xid >> 8), byte(xid)}),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionParameterRequestList, []byte{1, 3, 43, 60, 66, 67})),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 0})),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 2, 1})),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, "RPi4\x00\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04"...))),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00000:UNDI:002001")))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// repliesFrom broadcasts m from eth0 in ns (again every 2 s, as firmware retransmits) until every
// server in from has answered it with a reply of type want, and returns each server's first by
// its identifier.
func repliesFrom(t *testing.T, ns *netns.NS, m *dhcpv4.DHCPv4, want dhcpv4.MessageType, from ...string) map[string]*dhcpv4.DHCPv4 {
	t.Helper()
	got := map[string]*dhcpv4.DHCPv4{}
	err := ns.Do(t, func() error {
		fd, err := dhcpClientSocket()
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		var sent time.Time
		for deadline := time.Now().Add(patience); time.Now().Before(deadline); {
			missing := 0
			for _, s := range from {
				if got[s] == nil {
					missing++
				}
			}
			if missing == 0 {
				return nil
			}
			if time.Since(sent) > 2*time.Second {
				if err := unix.Sendto(fd, m.ToBytes(), 0, &unix.SockaddrInet4{Port: 67, Addr: [4]byte{255, 255, 255, 255}}); err != nil {
					return fmt.Errorf("send DISCOVER: %w", err)
				}
				sent = time.Now()
			}
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			r, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || r.OpCode != dhcpv4.OpcodeBootReply || r.TransactionID != m.TransactionID || r.MessageType() != want {
				continue
			}
			if id := r.ServerIdentifier().String(); got[id] == nil {
				got[id] = r
			}
		}
		return fmt.Errorf("%s from %v after %s: got %d", want, from, patience, len(got))
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// piDnsmasqConf is dnsmasq as the Raspberry Pi netboot guides configure it, TFTP off (netbootd's
// own TFTP server is not what is compared here).
const piDnsmasqConf = `port=0
interface=eth0
bind-interfaces
dhcp-range=10.10.0.160,10.10.0.170,255.255.255.0,1h
no-ping
log-dhcp
pxe-service=0,"Raspberry Pi Boot"
`

// TestClassPiOfferMatchesDnsmasq: the Raspberry Pi 4 bootloader's DISCOVER goes to real dnsmasq
// configured as Pi netboot guides say (pxe-service=0,"Raspberry Pi Boot") and to netbootd with
// the raspberrypi preset, on the same LAN; both OFFERs are compared on what the bootloader
// looks at: both offer; option 43 is byte for byte the same (the menu "Raspberry Pi Boot");
// option 60 is "PXEClient"; the TFTP server the Pi takes (option 54 when 43 has the menu, then
// option 66) is the offering server, and siaddr too. Once for a reserved Pi (the XDP program
// answers) and once for a Pi from the pool (the Go path).
func TestClassPiOfferMatchesDnsmasq(t *testing.T) {
	r := newXDPRack(t)
	pins := pinDir(t, r)
	other := r.lanHost(t, "10.10.0.2/24")
	dir := t.TempDir()
	conf := filepath.Join(dir, "dnsmasq.conf")
	if err := os.WriteFile(conf, []byte(piDnsmasqConf+"dhcp-leasefile="+dir+"/leases\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dnsmasq := other.Cmd(t, "dnsmasq", "--no-daemon", "--conf-file="+conf, "--pid-file=")
	dlog := &syncBuffer{}
	dnsmasq.Stdout, dnsmasq.Stderr = dlog, dlog
	if err := dnsmasq.Start(); err != nil {
		t.Fatal(err)
	}
	// Generic mode: the reply is larger than this DISCOVER, and a veth in native mode lacks the
	// tailroom (pass_size); a real NIC has it.
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", piRackConfig, "", "--xdp", "generic", "--pin-dir", pins)

	for i, tc := range []struct{ name, mac, counter, match, ackMatch string }{
		{"reserved, XDP", "dc:a6:32:00:00:01", "netbootd_xdp_packets_total", `result="offer"`, `result="ack"`},
		{"pool, Go path", "d8:3a:dd:00:00:02", "netbootd_dhcp_replies_total", `type="OFFER"`, `type="ACK"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := d.metric(tc.counter, tc.match)
			c := r.client(t, tc.mac)
			discover := pi4Discover(t, tc.mac, 0x5049_0000+uint32(i))
			offers := repliesFrom(t, c, discover, dhcpv4.MessageTypeOffer, "10.10.0.1", "10.10.0.2")
			ours, theirs := offers["10.10.0.1"], offers["10.10.0.2"]
			if after := d.metric(tc.counter, tc.match); after <= before {
				out, _ := d.ns.Exec("curl", "-sf", "http://"+d.mgmtAddr+"/metrics")
				var xdp []string
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(l, "netbootd_xdp_packets_total{") && !strings.HasSuffix(l, " 0") {
						xdp = append(xdp, l)
					}
				}
				t.Errorf("%s{%s} %v → %v: not answered by the path under test\n%s", tc.counter, tc.match, before, after, strings.Join(xdp, "\n"))
			}
			o43, t43 := ours.Options.Get(dhcpv4.OptionVendorSpecificInformation), theirs.Options.Get(dhcpv4.OptionVendorSpecificInformation)
			if len(t43) == 0 || !bytes.Contains(t43, []byte("Raspberry Pi Boot")) {
				t.Fatalf("dnsmasq's option 43 %q has no Pi menu: the reference is wrong\n%s", t43, dlog.String())
			}
			if !bytes.Equal(o43, t43) {
				t.Errorf("option 43:\nnetbootd %x\ndnsmasq  %x", o43, t43)
			}
			for _, m := range []struct {
				who string
				o   *dhcpv4.DHCPv4
			}{{"netbootd", ours}, {"dnsmasq", theirs}} {
				id := m.o.ServerIdentifier()
				if m.o.ClassIdentifier() != "PXEClient" || !m.o.ServerIPAddr.Equal(id) {
					t.Errorf("%s: option 60 %q, siaddr %s, option 54 %s: want PXEClient and siaddr = 54", m.who, m.o.ClassIdentifier(), m.o.ServerIPAddr, id)
				}
				if tftp := m.o.TFTPServerName(); tftp != "" && tftp != id.String() {
					t.Errorf("%s: option 66 %q is not the server (%s) the Pi takes with the menu", m.who, tftp, id)
				}
			}
			// The Pi then requests the offer it took: each server's ACK carries the same option 43.
			acks := d.metric(tc.counter, tc.ackMatch)
			for _, o := range []*dhcpv4.DHCPv4{ours, theirs} {
				server := o.ServerIdentifier().String()
				req, err := dhcpv4.New(dhcpv4.WithReply(discover), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
					dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(o.YourIPAddr)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(o.ServerIdentifier())))
				if err != nil {
					t.Fatal(err)
				}
				req.OpCode, req.ServerIPAddr = dhcpv4.OpcodeBootRequest, net.IPv4zero
				for _, code := range []dhcpv4.OptionCode{dhcpv4.OptionParameterRequestList, dhcpv4.OptionClientSystemArchitectureType,
					dhcpv4.OptionClientNetworkInterfaceIdentifier, dhcpv4.OptionClientMachineIdentifier, dhcpv4.OptionClassIdentifier} {
					req.UpdateOption(dhcpv4.OptGeneric(code, discover.Options.Get(code)))
				}
				ack := repliesFrom(t, c, req, dhcpv4.MessageTypeAck, server)[server]
				if got := ack.Options.Get(dhcpv4.OptionVendorSpecificInformation); !bytes.Equal(got, t43) || !ack.YourIPAddr.Equal(o.YourIPAddr) {
					t.Errorf("%s's ACK: yiaddr %s (offered %s), option 43 %x, want dnsmasq's %x", server, ack.YourIPAddr, o.YourIPAddr, got, t43)
				}
			}
			if after := d.metric(tc.counter, tc.ackMatch); after <= acks {
				t.Errorf("%s{%s} %v → %v: the ACK did not take the path under test", tc.counter, tc.ackMatch, acks, after)
			}
			// What differs and does not matter to the bootloader: netbootd adds option 66 and the
			// Pi 3 boot file; dnsmasq echoes option 97, which the Pi does not ask for.
			t.Logf("netbootd: file %q, 66 %q; dnsmasq: file %q, 97 %x", ours.BootFileName, ours.TFTPServerName(),
				theirs.BootFileName, theirs.Options.Get(dhcpv4.OptionClientMachineIdentifier))
		})
	}
}
