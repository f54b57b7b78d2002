//go:build integration

package bpf

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/tests/netns"
	"github.com/netbootd/netbootd/tests/xdprestore"
)

// BenchmarkXDPLiveTX is the fast path at full speed on one core, with no user-space sender in
// the way: BPF_PROG_TEST_RUN in live-frame mode hands the program a reserved client's DISCOVER
// as if received on a veth (native XDP), and every OFFER it returns with XDP_TX is really sent
// to the peer. The peer's XDP program (tests/xdprestore) counts each arrival and turns it back
// into the request before dropping it, because live-frame mode recycles pages unrewritten; that
// work runs on the same core and is included. It reports replies that arrived, per second.
func BenchmarkXDPLiveTX(b *testing.B) {
	ns := netns.New(b, "nbdlive")
	ns.Run(b, "ip", "link", "add", "lv0", "type", "veth", "peer", "name", "lv1")
	for _, dev := range []string{"lv0", "lv1"} {
		ns.Run(b, "ip", "link", "set", dev, "up")
	}
	in := frame(msg(b, dhcpv4.MessageTypeDiscover, resMAC), netip.IPv4Unspecified(), 0)
	var ifindex int
	var peer *xdprestore.Peer
	if err := ns.Do(b, func() error {
		ifi, err := net.InterfaceByName("lv0")
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		peer, err = xdprestore.Attach("lv1", in)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer peer.Close()
	f := loadProgram(b)
	// struct xdp_md: data, data_end (the kernel wants the frame's length), data_meta,
	// ingress_ifindex, rx_queue_index, egress_ifindex.
	ctx := make([]byte, 24)
	binary.LittleEndian.PutUint32(ctx[4:], uint32(len(in)))
	binary.LittleEndian.PutUint32(ctx[12:], uint32(ifindex))

	before, _ := f.Counters()
	arrivedBefore, _ := peer.Restored()
	const perRun = 1 << 20
	var elapsed time.Duration
	var sent uint64
	for b.Loop() {
		err := ns.Do(b, func() error {
			// One core: the run, the XDP_TX transmission and the peer's NAPI all happen here.
			var one unix.CPUSet
			one.Set(runtime.NumCPU() - 1)
			if err := unix.SchedSetaffinity(0, &one); err != nil {
				return err
			}
			start := time.Now()
			_, err := f.objs.NetbootdXdp.Run(&ebpf.RunOptions{Data: in, Context: ctx, Repeat: perRun,
				Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES, BatchSize: 64})
			elapsed += time.Since(start)
			return err
		})
		if err != nil {
			b.Fatalf("live test-run: %v", err)
		}
		sent += perRun
	}
	after, _ := f.Counters()
	arrivedAfter, _ := peer.Restored()
	arrived := arrivedAfter - arrivedBefore
	offers := after["offer"] - before["offer"]
	if offers < sent*99/100 || arrived < sent*99/100 {
		b.Fatalf("ran %d requests: %d offers, %d replies arrived at the peer (counters %v)", sent, offers, arrived, after)
	}
	b.ReportMetric(float64(arrived)/elapsed.Seconds(), "replies/s")
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(arrived), "ns/reply")
}
