//go:build integration

package tests

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/tests/netns"
)

// With no --config, `netbootd attach` is a proxyDHCP server beside the network's own DHCP server
// (dnsmasq here): a PXE client's DISCOVER gets an address from dnsmasq and boot information with
// no address from netbootd; a plain DHCP client gets nothing from netbootd.
func TestProxyBesideAnotherDHCPServer(t *testing.T) {
	r := newRack(t)
	r.lanDnsmasq(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", "", t.TempDir(), goPath...)

	client := r.client(t, "02:00:00:00:05:01")
	replies := discover(t, client, pxeDiscover(t, "02:00:00:00:05:01"), 2) // dnsmasq's and netbootd's
	var fromProxy, fromDHCP *dhcpv4.DHCPv4
	for _, m := range replies {
		switch m.ServerIdentifier().String() {
		case "10.10.0.1":
			fromProxy = m
		case "10.10.0.2":
			fromDHCP = m
		}
	}
	if fromDHCP == nil || !strings.HasPrefix(fromDHCP.YourIPAddr.String(), "10.10.0.1") {
		t.Errorf("no address offer from dnsmasq: %v", replies)
	}
	if fromProxy == nil {
		t.Fatalf("no proxyDHCP offer from netbootd; got %d replies\n%s", len(replies), d.logs())
	}
	if !fromProxy.YourIPAddr.IsUnspecified() || fromProxy.Options.Has(dhcpv4.OptionIPAddressLeaseTime) {
		t.Errorf("proxy offer carries an address: yiaddr %s", fromProxy.YourIPAddr)
	}
	if fromProxy.BootFileName != "ipxe.efi" || !fromProxy.ServerIPAddr.Equal(net.IPv4(10, 10, 0, 1)) ||
		fromProxy.ClassIdentifier() != "PXEClient" || fromProxy.Options.Get(dhcpv4.OptionVendorSpecificInformation) == nil {
		t.Errorf("proxy offer: file %q next-server %s option 60 %q option 43 %x", fromProxy.BootFileName,
			fromProxy.ServerIPAddr, fromProxy.ClassIdentifier(), fromProxy.Options.Get(dhcpv4.OptionVendorSpecificInformation))
	}

	// A plain client (busybox udhcpc) gets its address from dnsmasq; netbootd stays silent to it.
	got := udhcpcOnce(t, r.client(t, "02:00:00:00:05:02"))
	if got["serverid"] != "10.10.0.2" {
		t.Errorf("plain client bound from %s, want dnsmasq 10.10.0.2", got["serverid"])
	}
	if n := d.metric("netbootd_dhcp_drops_total", `reason="not_pxe"`); n < 1 {
		t.Errorf("netbootd did not count the plain client as not PXE")
	}
	if n := d.metric("netbootd_dhcp_replies_total", `type="ACK"`); n != 0 {
		t.Errorf("netbootd sent %v ACKs in proxy mode on port 67", n)
	}
}

// pxeDiscover is what UEFI x64 firmware broadcasts: vendor class PXEClient, arch 7.
func pxeDiscover(t *testing.T, mac string) *dhcpv4.DHCPv4 {
	t.Helper()
	hw, _ := net.ParseMAC(mac)
	m, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(hw), dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionBootfileName))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// dhcpClientSocket is a DHCP client's socket on eth0 of the namespace the caller runs in: port
// 68, broadcast allowed.
func dhcpClientSocket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return -1, err
	}
	for _, o := range []int{unix.SO_REUSEADDR, unix.SO_BROADCAST} {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, 1); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if err := unix.BindToDevice(fd, "eth0"); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: 68}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// discover broadcasts m from port 68 on eth0 in ns and collects the replies: until want of them
// came (within patience: a loaded machine answers late), then two seconds more for any reply
// beyond them (a duplicate, a server that should keep quiet); with want 0, for two seconds.
func discover(t *testing.T, ns *netns.NS, m *dhcpv4.DHCPv4, want int) []*dhcpv4.DHCPv4 {
	t.Helper()
	var out []*dhcpv4.DHCPv4
	err := ns.Do(t, func() error {
		fd, err := dhcpClientSocket()
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Sendto(fd, m.ToBytes(), 0, &unix.SockaddrInet4{Port: 67, Addr: [4]byte{255, 255, 255, 255}}); err != nil {
			return fmt.Errorf("send DISCOVER: %w", err)
		}
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		const beyond = 2 * time.Second
		deadline := time.Now().Add(patience)
		if want == 0 {
			deadline = time.Now().Add(beyond)
		}
		for time.Now().Before(deadline) {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if r, err := dhcpv4.FromBytes(buf[:n]); err == nil && r.OpCode == dhcpv4.OpcodeBootReply && r.TransactionID == m.TransactionID {
				out = append(out, r)
				if len(out) == want {
					deadline = time.Now().Add(beyond)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
