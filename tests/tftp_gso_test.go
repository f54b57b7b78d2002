//go:build integration

package tests

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netbootd/netbootd/tests/netns"
)

// gsoFiles are files whose last window ends on a short block (odd.bin) and on an empty one
// (even.bin: a multiple of both 512 and 1468 bytes).
func gsoFiles(t *testing.T) (root string, files map[string][]byte) {
	t.Helper()
	root = t.TempDir()
	files = map[string][]byte{"odd.bin": make([]byte, 1<<20+777), "even.bin": make([]byte, 2*512*367)}
	for name, data := range files {
		_, _ = rand.Read(data)
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, files
}

// gsoPair is netbootd on sv0 (10.88.0.1, fd00:88::1) in one namespace and a client (10.88.0.2,
// fd00:88::2) in another, one veth of the given MTU between them; DHCPv6 is on, so TFTP
// also answers on IPv6.
func gsoPair(t *testing.T, mtu int, root string) (d *daemon, server, client *netns.NS) {
	t.Helper()
	server, client = netns.New(t, "nbd"), netns.New(t, "nbd")
	netns.Veth(t, server, "sv0", "10.88.0.1/24", client, "eth0", "10.88.0.2/24")
	server.Run(t, "ip", "link", "set", "sv0", "mtu", fmt.Sprint(mtu))
	client.Run(t, "ip", "link", "set", "eth0", "mtu", fmt.Sprint(mtu))
	server.Run(t, "ip", "-6", "addr", "add", "fd00:88::1/64", "dev", "sv0", "nodad")
	client.Run(t, "ip", "-6", "addr", "add", "fd00:88::2/64", "dev", "eth0", "nodad")
	cfg := `interface: {mode: authoritative, server_ip: 10.88.0.1}
subnets:
  - cidr: 10.88.0.0/24
    pools: ["10.88.0.100-10.88.0.150"]
dhcp6:
  enabled: true
  pool: {start: "fd00:88::100", end: "fd00:88::1ff"}
tftp: {root: ` + root + `, max_window: 64}
`
	return startNetbootd(t, server, "sv0", "10.88.0.1", cfg, "", goPath...), server, client
}

// txPackets is dev's count of frames sent (a GSO buffer that crosses a veth whole is one).
func txPackets(t *testing.T, ns *netns.NS, dev string) int {
	t.Helper()
	out := ns.Run(t, "cat", "/sys/class/net/"+dev+"/statistics/tx_packets")
	var n int
	if _, err := fmt.Sscan(out, &n); err != nil {
		t.Fatalf("tx_packets of %s: %q: %v", dev, out, err)
	}
	return n
}

// atftpGet fetches name from server with atftp at blksize and windowsize and reports whether it
// arrived as want.
func atftpGet(t *testing.T, client *netns.NS, server, name string, blksize, window int, want []byte) {
	t.Helper()
	local := filepath.Join(t.TempDir(), name)
	args := []string{"120", "atftp", "--get", "-r", name, "-l", local,
		"--option", fmt.Sprintf("blksize %d", blksize), "--option", fmt.Sprintf("windowsize %d", window), server}
	o, err := client.Exec("timeout", args...)
	// atftp aborts on a retransmitted OACK (see TestTFTPUnderDelayAndLoss): retry that.
	for try := 0; err != nil && try < 3 && strings.Contains(o, "unexpected OACK"); try++ {
		o, err = client.Exec("timeout", args...)
	}
	if err != nil {
		t.Errorf("%s %s blksize %d windowsize %d: %v\n%s", server, name, blksize, window, err, o)
		return
	}
	got, _ := os.ReadFile(local)
	if !bytes.Equal(got, want) {
		t.Errorf("%s %s blksize %d windowsize %d: %d bytes of %d, content differs", server, name, blksize, window, len(got), len(want))
	}
}

// Windows go out as UDP GSO messages that the kernel cuts into the DATA packets: atftp gets
// every file intact at windowsize 4, 16 and 64, blksize 512 and 1468, over IPv4 and IPv6, with
// the veth's checksum offload off (the kernel checksums each segment) and on; the kernel
// refused GSO for none of them, and with offload on the windows crossed the veth as GSO buffers.
func TestWinGSOWindowedDownloads(t *testing.T) {
	root, files := gsoFiles(t)
	// 1520: room for a 1468-byte block over IPv6 (netbootd caps blksize to the link's MTU).
	d, server, client := gsoPair(t, 1520, root)
	n := 0
	for _, offload := range []string{"off", "on"} {
		server.Run(t, "ethtool", "-K", "sv0", "tx", offload)
		client.Run(t, "ethtool", "-K", "eth0", "tx", offload)
		for _, addr := range []string{"10.88.0.1", "fd00:88::1"} {
			for _, window := range []int{4, 16, 64} {
				for _, blksize := range []int{512, 1468} {
					for name, data := range files {
						atftpGet(t, client, addr, name, blksize, window, data)
						n++
					}
				}
			}
		}
	}
	// With checksum offload on, a GSO buffer crosses the veth whole (the client's stack cuts it):
	// the server's interface sends far fewer frames than the DATA packets atftp receives.
	data := files["odd.bin"]
	blocks := len(data)/1468 + 1
	for _, addr := range []string{"10.88.0.1", "fd00:88::1"} {
		before := txPackets(t, server, "sv0")
		atftpGet(t, client, addr, "odd.bin", 1468, 64, data)
		n++
		if frames := txPackets(t, server, "sv0") - before; frames >= blocks/4 {
			t.Errorf("%s: %d frames sent for %d DATA packets at windowsize 64: windows did not go as GSO buffers", addr, frames, blocks)
		}
	}
	if got := d.metric("netbootd_tftp_transfers_completed_total"); got < float64(n) {
		t.Errorf("%v transfers completed, want %d", got, n)
	}
	if got := d.metric("netbootd_tftp_gso_refused_total"); got != 0 {
		t.Errorf("the kernel refused GSO for %v transfers on a plain veth", got)
	}
	if got := d.metric("netbootd_tftp_negotiated_blksize_bucket", `le="1468"`) - d.metric("netbootd_tftp_negotiated_blksize_bucket", `le="1428"`); got < float64(n/2) {
		t.Errorf("%v transfers at blksize 1468, want %d", got, n/2)
	}
}

// Where the kernel refuses GSO, here a route whose MTU (1500) is below the block asked (8192,
// which the link's MTU of 9000 allows), each transfer falls back to sending packet by packet
// (IP fragments) and the files arrive intact, over IPv4 and IPv6; smaller blocks on the same
// route still go as GSO.
func TestWinGSOFallbackOnSmallPathMTU(t *testing.T) {
	root, files := gsoFiles(t)
	d, server, client := gsoPair(t, 9000, root)
	server.Run(t, "ip", "route", "add", "10.88.0.2/32", "dev", "sv0", "mtu", "1500")
	server.Run(t, "ip", "-6", "route", "add", "fd00:88::2/128", "dev", "sv0", "mtu", "1500")
	refused := 0
	for _, addr := range []string{"10.88.0.1", "fd00:88::1"} {
		for _, window := range []int{4, 16, 64} {
			atftpGet(t, client, addr, "odd.bin", 8192, window, files["odd.bin"])
			refused++
		}
	}
	if got := d.metric("netbootd_tftp_gso_refused_total"); got != float64(refused) {
		t.Errorf("GSO refused for %v transfers, want %d (every one with blocks above the path MTU)", got, refused)
	}
	for _, addr := range []string{"10.88.0.1", "fd00:88::1"} {
		atftpGet(t, client, addr, "even.bin", 1400, 16, files["even.bin"])
	}
	if got := d.metric("netbootd_tftp_gso_refused_total"); got != float64(refused) {
		t.Errorf("GSO refused for %v transfers, want still %d: 1400-byte blocks fit the path", got, refused)
	}
	if got := d.metric("netbootd_tftp_transfers_completed_total"); got < float64(refused+2) {
		t.Errorf("%v transfers completed, want %d", got, refused+2)
	}
}

// Under loss (3% each way, through tests/delayline's TUN devices) windows resent from the
// first unacknowledged block go as GSO messages too, and every file arrives intact.
func TestWinGSOUnderLoss(t *testing.T) {
	server, client := delayLine(t, "200us", "0.03")
	root, files := gsoFiles(t)
	d := startNetbootd(t, server, "dla", "10.77.0.1", "interface: {mode: proxy}\ntftp: {root: "+root+", max_window: 64}\n", "", goPath...)
	for _, window := range []int{4, 16, 64} {
		for _, blksize := range []int{512, 1468} {
			atftpGet(t, client, "10.77.0.1", "odd.bin", blksize, window, files["odd.bin"])
		}
	}
	if n := d.metric("netbootd_tftp_retransmitted_blocks_total"); n == 0 {
		t.Error("no retransmissions counted under 3% loss")
	}
	if n := d.metric("netbootd_tftp_gso_refused_total"); n != 0 {
		t.Errorf("the kernel refused GSO for %v transfers through a TUN device", n)
	}
}
