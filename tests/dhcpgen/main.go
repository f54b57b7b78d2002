// Command dhcpgen floods DHCPDISCOVERs onto an interface through AF_PACKET, for measuring the
// XDP fast path beyond what perfdhcp (one process, full exchanges) can send. It is bounded in
// count and time, sends only on the interface it is given, and prints what it sent.
//
//	dhcpgen -i bc0 -macs macs.txt -t 5s
//	dhcpgen -i bc0 -random 100000 -n 100000 -t 30s   # a starvation flood: every frame a new MAC
//	dhcpgen -i bc0 -random 100000 -ip-options        # ... each with an IPv4 option (IHL 6)
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/tests/rawframe"
)

func main() {
	iface := flag.String("i", "", "interface to send on (inside a test namespace)")
	macsFile := flag.String("macs", "", "file with one client MAC a line")
	dur := flag.Duration("t", 5*time.Second, "how long to send (at most 60s)")
	workers := flag.Int("w", 1, "sending threads")
	random := flag.Int("random", 0, "instead of -macs: this many random locally administered MACs (at most 1,000,000)")
	count := flag.Uint64("n", 0, "stop after this many frames (0: only the time bound)")
	pps := flag.Int("pps", 0, "frames per second per thread (0: as fast as it can)")
	ipOptions := flag.Bool("ip-options", false, "give every frame an IPv4 option (router alert: IHL 6)")
	flag.Parse()
	macs, err := clients(*macsFile, *random)
	if err == nil {
		err = run(*iface, macs, min(*dur, time.Minute), *workers, *count, *pps, *ipOptions)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dhcpgen:", err)
		os.Exit(1)
	}
}

// clients are the MACs to send as: read from a file, or random.
func clients(path string, random int) ([]net.HardwareAddr, error) {
	if random <= 0 {
		return readMACs(path)
	}
	if random > 1_000_000 {
		return nil, fmt.Errorf("-random %d: at most 1,000,000", random)
	}
	out := make([]net.HardwareAddr, random)
	for i := range out {
		m := make(net.HardwareAddr, 6)
		v := rand.Uint64()
		for j := range m {
			m[j] = byte(v >> (8 * j))
		}
		m[0] = m[0]&0xfc | 0x02 // unicast, locally administered
		out[i] = m
	}
	return out, nil
}

func run(ifname string, macs []net.HardwareAddr, dur time.Duration, workers int, count uint64, pps int, ipOptions bool) error {
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	frames := make([][]byte, len(macs))
	for i, m := range macs {
		frames[i] = discover(m, rand.Uint32(), ipOptions)
	}
	var sent atomic.Uint64
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // protocol 0: send only
			if err != nil {
				firstErr.Store(err)
				return
			}
			defer unix.Close(fd)
			// Straight to the driver: the qdisc adds nothing to a bounded flood but cost.
			_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
			sa := &unix.SockaddrLinklayer{Ifindex: ifc.Index, Protocol: 0x0008}
			n := uint64(0)
			for i := w; ; i += workers {
				if count > 0 && uint64(i) >= count {
					break
				}
				if n%256 == 0 {
					if time.Now().After(deadline) {
						break
					}
					if pps > 0 { // pace: be where the rate says after n frames
						if ahead := time.Duration(n)*time.Second/time.Duration(pps) - time.Since(start); ahead > 0 {
							time.Sleep(ahead)
						}
					}
				}
				if err := unix.Sendto(fd, frames[i%len(frames)], 0, sa); err != nil {
					if err == unix.ENOBUFS {
						continue
					}
					firstErr.Store(err)
					return
				}
				n++
			}
			sent.Add(n)
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	el := time.Since(start)
	fmt.Printf("sent %d DISCOVERs in %.2fs: %.0f/s\n", sent.Load(), el.Seconds(), float64(sent.Load())/el.Seconds())
	return nil
}

func readMACs(path string) ([]net.HardwareAddr, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []net.HardwareAddr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m, err := net.ParseMAC(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no MACs", path)
	}
	return out, sc.Err()
}

// discover is a broadcast DHCPDISCOVER from mac, padded to 548 bytes of BOOTP as busybox udhcpc
// sends it (so an in-place reply fits without growing the frame); with ipOptions its IPv4
// header carries a router alert option (IHL 6).
func discover(mac net.HardwareAddr, xid uint32, ipOptions bool) []byte {
	p := make([]byte, 548)
	p[0], p[1], p[2] = 1, 1, 6
	binary.BigEndian.PutUint32(p[4:], xid)
	copy(p[28:], mac)
	copy(p[236:], []byte{99, 130, 83, 99, 53, 1, 1, 55, 4, 1, 3, 6, 15, 255})
	var opts []byte
	if ipOptions {
		opts = []byte{148, 4, 0, 0} // RFC 2113 router alert
	}
	return rawframe.Broadcast(mac, netip.IPv4Unspecified(), opts, 68, 67, p)
}
