//go:build integration

package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/tests/netns"
)

// RFC conformance of the Go path (issue 14), each with the real client that hits it.

// bigConfig is rackConfig whose local subnet has two 200-byte options, sent when asked for.
var bigConfig = strings.Replace(rackConfig, "      domain: rack.test\n", "      domain: rack.test\n"+
	"      custom:\n"+
	"        - {code: 240, type: string, value: "+strings.Repeat("a", 200)+"}\n"+
	"        - {code: 241, type: string, value: "+strings.Repeat("b", 200)+"}\n", 1)

// RFC 2131 §4.3.1: busybox udhcpc accepts 576 bytes (option 57) and asks for both 200-byte
// options: it gets a lease and the first, the second is dropped (logged, counted), where the
// server used to drop the whole reply.
func TestRFC2131_4_3_1_Udhcpc576GetsATrimmedReply(t *testing.T) {
	r := newRack(t)
	if !strings.Contains(bigConfig, "code: 241") {
		t.Fatal("bigConfig did not get its options")
	}
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", bigConfig, "", goPath...)
	c := r.client(t, "02:00:00:00:0e:01")
	script := writeScript(t, udhcpcScript+`echo "sizes o240=${#opt240} o241=${#opt241}"`+"\n")
	out, err := c.Exec("busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "4", "-T", "1", "-A", "1",
		"-O", "240", "-O", "241", "-s", script)
	if err != nil {
		t.Fatalf("udhcpc: %v\n%s\n%s", err, out, d.logs())
	}
	f := boundFields(out)
	if f == nil || !strings.HasPrefix(f["ip"], "10.10.0.1") || f["router"] != "10.10.0.1" {
		t.Fatalf("udhcpc did not bind a pool address with its router:\n%s", out)
	}
	// busybox exports unknown options as hex: 200 bytes are 400 characters.
	if !strings.Contains(out, "sizes o240=400 o241=0") {
		t.Errorf("want option 240 whole and 241 dropped; udhcpc saw:\n%s", out)
	}
	if n := d.metric("netbootd_dhcp_reply_options_dropped_total"); n < 2 { // OFFER and ACK
		t.Errorf("netbootd_dhcp_reply_options_dropped_total = %v, want >= 2", n)
	}
	if !strings.Contains(d.logs(), "reply options dropped") {
		t.Errorf("no WARN line for the dropped option:\n%s", d.logs())
	}
}

// RFC 2131 §4.3.2: a NAK through a relay has the broadcast bit set, so ISC dhcrelay broadcasts
// it to the client, which has no address yet. ISC dhclient, rebooting behind the relay with a
// lease from the other subnet, is NAKed (wrong network), hears it and starts over.
func TestRFC2131_4_3_2_DhclientBehindDhcrelayHearsTheNAK(t *testing.T) {
	r := newRelayedRack(t, "02:00:00:00:0e:02")
	client := r.client
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", goPath...)
	capture := startCapture(t, r.server, "sv0", 67)
	relOut := r.dhcrelay(t)

	dir := t.TempDir()
	leases := filepath.Join(dir, "leases")
	// A cached lease from the local subnet: the client moved behind the relay (INIT-REBOOT).
	writeDhclientLease(t, leases, "10.10.0.120")
	result := filepath.Join(dir, "bound")
	script := writeScript(t, `#!/bin/sh
case "$reason" in BOUND|REBOOT|RENEW) echo "$new_ip_address" > `+result+`;; esac
`)
	out, err := client.Exec("timeout", "60", "dhclient", "-4", "-1", "-v", "-sf", script,
		"-lf", leases, "-pf", filepath.Join(dir, "pid"), "eth0")
	if pid, perr := os.ReadFile(filepath.Join(dir, "pid")); perr == nil {
		_, _ = client.Exec("kill", strings.TrimSpace(string(pid)))
	}
	if err != nil {
		t.Fatalf("dhclient: %v\n%s\nrelay:\n%s\nnetbootd:\n%s", err, out, relOut.String(), d.logs())
	}
	if !strings.Contains(out, "DHCPREQUEST for 10.10.0.120") || !strings.Contains(out, "DHCPNAK from") {
		t.Errorf("dhclient did not reboot with 10.10.0.120 and hear a NAK:\n%s", out)
	}
	got, _ := os.ReadFile(result)
	if ip := strings.TrimSpace(string(got)); !strings.HasPrefix(ip, "10.20.0.1") {
		t.Errorf("after the NAK dhclient bound %q, want 10.20.0.100-150:\n%s", ip, out)
	}
	if n := d.metric("netbootd_dhcp_replies_total", `type="NAK"`); n < 1 {
		t.Errorf("no NAK counted")
	}
	// dhcrelay delivers a NAK either way (to chaddr when the bit is clear): the capture shows
	// what the server sent.
	naks := 0
	for _, p := range capture.stop(t) {
		if bootpOp(p) == 2 && string(dhcpOption(p, 53)) == "\x06" {
			naks++
			if p[10]&0x80 == 0 {
				t.Errorf("NAK to the relay without the broadcast bit: flags %02x%02x", p[10], p[11])
			}
		}
	}
	if naks == 0 {
		t.Errorf("no NAK in the capture (%s)", capture.out.String())
	}
}

// PXE specification §2.2.5 (and dnsmasq): the proxyDHCP ACK to a REQUEST sent to port 4011
// comes back from port 4011, which firmware that filters by source port requires.
func TestPXE_ProxyAckFromPort4011(t *testing.T) {
	r := newRack(t)
	startNetbootd(t, r.server, "sv0", "10.10.0.1", "", t.TempDir(), goPath...)
	c := r.client(t, "02:00:00:00:0e:03")
	c.Run(t, "ip", "addr", "add", "10.10.0.60/24", "dev", "eth0")
	m, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithHwAddr([]byte{2, 0, 0, 0, 0x0e, 3}),
		dhcpv4.WithClientIP([]byte{10, 10, 0, 60}),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)))
	if err != nil {
		t.Fatal(err)
	}
	var from *unix.SockaddrInet4
	var reply *dhcpv4.DHCPv4
	err = c.Do(t, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: 68, Addr: [4]byte{10, 10, 0, 60}}); err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(time.Second))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		for try := 0; try < 15 && reply == nil; try++ { // the server may still be starting: ask again
			if err := unix.Sendto(fd, m.ToBytes(), 0, &unix.SockaddrInet4{Port: 4011, Addr: [4]byte{10, 10, 0, 1}}); err != nil {
				return err
			}
			n, sa, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				continue
			}
			if p, err := dhcpv4.FromBytes(buf[:n]); err == nil && p.TransactionID == m.TransactionID {
				reply, from = p, sa.(*unix.SockaddrInet4)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if reply == nil {
		t.Fatal("no proxyDHCP ACK to the port 4011 REQUEST")
	}
	if from.Port != 4011 || from.Addr != [4]byte{10, 10, 0, 1} || reply.BootFileName != "ipxe.efi" {
		t.Errorf("ACK from %v:%d, file %q; want from 10.10.0.1:4011 with ipxe.efi", from.Addr, from.Port, reply.BootFileName)
	}
}

// RFC 2131 §4.3.2: ISC dhclient rebooting with a cached lease the server has no record of
// (another server's, or a lost one) gets silence, not an ACK: the server counts it as
// no_record, and dhclient falls back to DISCOVER and binds normally.
func TestRFC2131_4_3_2_DhclientInitRebootWithoutRecordIsIgnored(t *testing.T) {
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", goPath...)
	c := r.client(t, "02:00:00:00:0e:04")
	dir := t.TempDir()
	leases := filepath.Join(dir, "leases")
	writeDhclientLease(t, leases, "10.10.0.140")
	conf := filepath.Join(dir, "dhclient.conf")
	if err := os.WriteFile(conf, []byte("reboot 3;\n"), 0o644); err != nil { // INIT-REBOOT for 3 s, then DISCOVER
		t.Fatal(err)
	}
	result := filepath.Join(dir, "bound")
	script := writeScript(t, `#!/bin/sh
echo "$reason $new_ip_address" >> `+result+`
`)
	out, err := c.Exec("timeout", "60", "dhclient", "-4", "-1", "-v", "-cf", conf, "-sf", script,
		"-lf", leases, "-pf", filepath.Join(dir, "pid"), "eth0")
	if pid, perr := os.ReadFile(filepath.Join(dir, "pid")); perr == nil {
		_, _ = c.Exec("kill", strings.TrimSpace(string(pid)))
	}
	if err != nil {
		t.Fatalf("dhclient: %v\n%s\n%s", err, out, d.logs())
	}
	events, _ := os.ReadFile(result)
	if !strings.Contains(out, "DHCPREQUEST for 10.10.0.140") || strings.Contains(string(events), "REBOOT") {
		t.Errorf("want an INIT-REBOOT REQUEST left unanswered; dhclient:\n%s\nevents:\n%s", out, events)
	}
	if !strings.Contains(string(events), "BOUND 10.10.0.") {
		t.Errorf("dhclient did not bind through DISCOVER afterwards:\n%s\n%s", out, events)
	}
	if n := d.metric("netbootd_dhcp_drops_total", `reason="no_record"`); n < 1 {
		t.Errorf("netbootd_dhcp_drops_total{reason=no_record} = %v, want >= 1", n)
	}
}

// RFC 6842 on the XDP fast path: a reserved udhcpc client is answered in the kernel, with its
// identifier (01+MAC by default, a DUID with -x) echoed unaltered; the control plane sends nothing.
func TestRFC6842_UdhcpcReservedEchoedByXDP(t *testing.T) {
	r := newXDPRack(t)
	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", "--xdp", "native", "--pin-dir", pins)
	c := r.client(t, "02:00:00:00:00:0a")
	script := writeScript(t, udhcpcScript+`echo "echoed opt61=$opt61"`+"\n")
	for _, tc := range []struct {
		extra []string
		want  string
	}{
		{nil, "010200000000" + "0a"},
		{[]string{"-x", "0x3d:ff00000001000400aa"}, "ff00000001000400aa"},
	} {
		before := d.metric("netbootd_xdp_packets_total", `result="ack"`)
		args := append([]string{"udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "4", "-T", "1", "-A", "1", "-s", script}, tc.extra...)
		out, err := c.Exec("busybox", args...)
		if err != nil {
			t.Fatalf("udhcpc %v: %v\n%s", tc.extra, err, out)
		}
		if f := boundFields(out); f == nil || f["ip"] != "10.10.0.10" {
			t.Errorf("udhcpc %v: lease %v\n%s", tc.extra, f, out)
		}
		if !strings.Contains(out, "echoed opt61="+tc.want+"\n") {
			t.Errorf("udhcpc %v: option 61 not echoed as %s:\n%s", tc.extra, tc.want, out)
		}
		if after := d.metric("netbootd_xdp_packets_total", `result="ack"`); after <= before {
			t.Errorf("udhcpc %v: not answered by XDP (acks %v → %v)", tc.extra, before, after)
		}
		c.Run(t, "ip", "addr", "flush", "dev", "eth0")
	}
	if n := d.metric("netbootd_dhcp_replies_total"); n != 0 {
		t.Errorf("the control plane sent %v replies; XDP should have answered the reserved client", n)
	}
}

// RFC 2131 §4.2 and RFC 6842 with busybox udhcpc: its identifier comes back unaltered (opt61);
// a pool machine keeps its address when a later stage sends a DUID instead of 01+MAC, and a
// second DUID on the same MAC is another client with another address.
func TestRFC6842_UdhcpcClientIdentifier(t *testing.T) {
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", goPath...)
	c := r.client(t, "02:00:00:00:0e:05")
	script := writeScript(t, udhcpcScript+`echo "echoed opt61=$opt61"`+"\n")
	run := func(extra ...string) (ip, echoed string) {
		t.Helper()
		args := append([]string{"udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "4", "-T", "1", "-A", "1", "-s", script}, extra...)
		out, err := c.Exec("busybox", args...)
		if err != nil {
			t.Fatalf("udhcpc %v: %v\n%s", extra, err, out)
		}
		f := boundFields(out)
		if f == nil {
			t.Fatalf("udhcpc %v: no lease\n%s", extra, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(line, "echoed opt61="); ok {
				echoed = v
			}
		}
		c.Run(t, "ip", "addr", "flush", "dev", "eth0")
		return f["ip"], echoed
	}
	first, echoed := run() // udhcpc's default identifier: 01 + MAC
	if echoed != "01020000000e05" {
		t.Errorf("option 61 echoed as %q, want 01020000000e05", echoed)
	}
	second, echoed := run("-x", "0x3d:ff00000001000400aa")
	if echoed != "ff00000001000400aa" {
		t.Errorf("DUID echoed as %q", echoed)
	}
	if second != first {
		t.Errorf("with a DUID the machine got %s, with 01+MAC %s", second, first)
	}
	third, _ := run("-x", "0x3d:ff00000002000400bb")
	if third == first {
		t.Errorf("a second identifier on the MAC got the first one's address %s", third)
	}
	// GET /api/v1/leases shows which identifier holds which address.
	rows := d.leases()
	got := map[string]string{}
	for _, l := range rows {
		if l.MAC == "02:00:00:00:0e:05" && l.State == "bound" {
			got[l.ClientID] = l.IP
		}
	}
	if got["ff00000001000400aa"] != first || got["ff00000002000400bb"] != third {
		t.Errorf("leases by identifier %v; want ff..aa at %s, ff..bb at %s", got, first, third)
	}
}

// exchange broadcasts the raw request p from port 68 on eth0 in ns and returns the first reply
// with xid, asking again while none comes (the server may still be starting).
func exchange(t *testing.T, ns *netns.NS, p []byte, xid [4]byte) *dhcpv4.DHCPv4 {
	t.Helper()
	var reply *dhcpv4.DHCPv4
	err := ns.Do(t, func() error {
		fd, err := dhcpClientSocket()
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		tv := unix.NsecToTimeval(int64(time.Second))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		buf := make([]byte, 1500)
		for try := 0; try < 15 && reply == nil; try++ {
			if err := unix.Sendto(fd, p, 0, &unix.SockaddrInet4{Port: 67, Addr: [4]byte{255, 255, 255, 255}}); err != nil {
				return err
			}
			for reply == nil {
				n, _, err := unix.Recvfrom(fd, buf, 0)
				if err != nil {
					break
				}
				if m, err := dhcpv4.FromBytes(buf[:n]); err == nil && m.OpCode == dhcpv4.OpcodeBootReply && m.TransactionID == xid {
					reply = m
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return reply
}

// RFC 2131 §4.1, RFC 2132 §9.3, through a real socket: a REQUEST whose server identifier and
// requested address travel in the file field and whose parameter request list travels in sname
// (option 52 = 3) is ACKed for that address, with the option asked for in sname.
func TestRFC2132_9_3_OverloadedRequestOverTheWire(t *testing.T) {
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", bigConfig, "", goPath...)
	c := r.client(t, "02:00:00:00:0e:06")
	hw := []byte{2, 0, 0, 0, 0x0e, 6}
	disc, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), dhcpv4.WithHwAddr(hw), dhcpv4.WithBroadcast(true))
	if err != nil {
		t.Fatal(err)
	}
	offer := exchange(t, c, disc.ToBytes(), disc.TransactionID)
	if offer == nil || offer.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("no OFFER: %v\n%s", offer, d.logs())
	}
	req, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), dhcpv4.WithHwAddr(hw), dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptGeneric(dhcpv4.OptionOptionOverload, []byte{3})))
	if err != nil {
		t.Fatal(err)
	}
	p := req.ToBytes()
	file := append([]byte{54, 4, 10, 10, 0, 1, 50, 4}, offer.YourIPAddr.To4()...)
	copy(p[108:236], append(file, 255))
	copy(p[44:108], []byte{55, 3, 1, 3, 240, 255})
	ack := exchange(t, c, p, req.TransactionID)
	if ack == nil || ack.MessageType() != dhcpv4.MessageTypeAck || !ack.YourIPAddr.Equal(offer.YourIPAddr) {
		t.Fatalf("overloaded REQUEST for %s: %v\n%s", offer.YourIPAddr, ack, d.logs())
	}
	if got := len(ack.Options.Get(dhcpv4.GenericOptionCode(240))); got != 200 {
		t.Errorf("option 240, asked for in sname, has %d bytes in the ACK, want 200", got)
	}
}

// RFC 6842 and RFC 2131 §4.2 with dhcpcd, whose client identifier is by default RFC 4361's:
// 0xff, the IAID (the MAC's last 4 bytes), then the DUID. The server echoes it byte for byte
// and keys the pool lease by it. dhcpcd runs once, with its state directories on a tmpfs in a
// private mount namespace and our script instead of its hooks: the host's files stay untouched.
func TestRFC6842_DhcpcdDUIDClientIdentifier(t *testing.T) {
	const mac = "02:00:00:00:0e:dc"
	hostFiles := []string{"/etc/resolv.conf", "/var/lib/dhcpcd", "/run/dhcpcd"}
	before := fingerprint(t, hostFiles...)
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", goPath...)
	c := r.client(t, mac)
	capture := startCapture(t, r.server, "sv0", 67)

	dir := t.TempDir()
	conf := filepath.Join(dir, "dhcpcd.conf")
	if err := os.WriteFile(conf, []byte("duid\nnoipv4ll\nrequire dhcp_server_identifier\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := writeScript(t, "#!/bin/sh\necho \"dhcpcd-hook reason=$reason ip=$new_ip_address\"\n")
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// unshare -m makes the mounts private to dhcpcd; /run on a tmpfs also hides the host's
	// syslog socket.
	isolated := `mount -t tmpfs tmpfs /var/lib/dhcpcd && mount -t tmpfs tmpfs /run &&
mount --bind "$1" /etc/resolv.conf && shift && exec "$@"`
	out, err := c.Exec("unshare", "-m", "sh", "-c", isolated, "sh", resolv,
		"timeout", "120", "dhcpcd", "-f", conf, "-c", script, "-4", "-1", "-B", "-d", "-t", "90", "eth0")
	if err != nil {
		t.Fatalf("dhcpcd: %v\n%s\nnetbootd:\n%s", err, out, d.logs())
	}
	ip, duid := "", ""
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "dhcpcd-hook reason=BOUND ip="); ok {
			ip = rest
		}
		if rest, ok := strings.CutPrefix(line, "DUID "); ok { // dhcpcd logs the DUID it made
			duid = strings.ReplaceAll(rest, ":", "")
		}
	}
	if !strings.HasPrefix(ip, "10.10.0.1") || len(ip) != len("10.10.0.100") {
		t.Fatalf("dhcpcd bound %q, want one of 10.10.0.100-150:\n%s", ip, out)
	}

	var sent, echoed []byte
	for _, p := range capture.stop(t) {
		typ := string(dhcpOption(p, 53))
		switch {
		case bootpOp(p) == 1 && typ == "\x03":
			sent = dhcpOption(p, 61)
		case bootpOp(p) == 2 && typ == "\x05":
			echoed = dhcpOption(p, 61)
		}
	}
	// 0xff, the IAID (the MAC's last 4 bytes), the DUID dhcpcd logged (RFC 4361 §6.1).
	if want := "ff00000edc" + duid; duid == "" || fmt.Sprintf("%x", sent) != want {
		t.Fatalf("dhcpcd's REQUEST carries option 61 %x, want %s:\n%s", sent, want, out)
	}
	t.Logf("dhcpcd bound %s with client identifier %x; the ACK echoed %x", ip, sent, echoed)
	if string(echoed) != string(sent) {
		t.Errorf("ACK echoes option 61 as %x, dhcpcd sent %x", echoed, sent)
	}

	rows := d.leases()
	found := false
	for _, l := range rows {
		if l.ClientID == fmt.Sprintf("%x", sent) {
			found = true
			if l.IP != ip || l.State != "bound" || l.MAC != mac {
				t.Errorf("lease for dhcpcd's identifier: %+v, want %s bound to %s", l, ip, mac)
			}
		}
	}
	if !found {
		t.Errorf("no lease keyed by %x in %+v", sent, rows)
	}
	if after := fingerprint(t, hostFiles...); after != before {
		t.Errorf("dhcpcd changed the host's files:\nbefore %s\nafter  %s", before, after)
	}
}

// fingerprint hashes the paths (files, or a directory's entries) so a test can show it left them alone.
func fingerprint(t *testing.T, paths ...string) string {
	t.Helper()
	h := sha256.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%s\n", p)
		_ = filepath.WalkDir(p, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				fmt.Fprintf(h, "%s: %v\n", path, err)
				return nil
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s %v %d %v\n", path, info.Mode(), info.Size(), info.ModTime().UnixNano())
			if info.Mode().IsRegular() {
				data, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				h.Write(data)
			}
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeDhclientLease writes an ISC dhclient lease file holding one unexpired lease of ip from
// 10.10.0.1, so that dhclient starts in INIT-REBOOT.
func writeDhclientLease(t *testing.T, path, ip string) {
	t.Helper()
	expires := time.Now().Add(time.Hour).UTC().Format("2006/01/02 15:04:05")
	lease := fmt.Sprintf(`lease {
  interface "eth0";
  fixed-address %[2]s;
  option subnet-mask 255.255.255.0;
  option dhcp-server-identifier 10.10.0.1;
  renew 0 %[1]s;
  rebind 0 %[1]s;
  expire 0 %[1]s;
}
`, expires, ip)
	if err := os.WriteFile(path, []byte(lease), 0o644); err != nil {
		t.Fatal(err)
	}
}
