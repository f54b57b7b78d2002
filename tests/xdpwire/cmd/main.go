// Command xdpwire measures the XDP fast path on the wire from a client's veth end (package
// xdpwire): each round seeds -inflight requests for the reserved clients of -clients from one
// CPU, lets requests and replies ping-pong for -t, and counts the replies that arrived back. Run
// it inside the client's network namespace, with the server's program attached on the other end.
//
//	xdpwire -i bc0 -clients clients.txt -type request -server-ip 10.0.0.1 -rounds 5 -cpu 1
//
// Per round it prints requests sent and replies received per second; the line "summary ...",
// gives min/median/max of both and the totals, for scripts. With -server-link (the server
// program's pinned XDP link) one more round runs with the kernel's BPF run-time statistics on,
// and the line "cost ..." gives each program's average ns per run in it: both run on the same
// core in the direct setup, so this is how the round trip's time divides between them. That
// round is not in the summary: the statistics add two clock reads to every run.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/tests/xdpwire"
)

func main() {
	ifname := flag.String("i", "", "the client's veth end")
	clientsFile := flag.String("clients", "", `reserved clients, one "MAC IP" a line`)
	typ := flag.String("type", "discover", "request type: discover or request (SELECTING, server identifier -server-ip)")
	serverIP := flag.String("server-ip", "", "the server identifier of a REQUEST")
	per := flag.Duration("t", 3*time.Second, "length of a round")
	rounds := flag.Int("rounds", 5, "rounds")
	inflight := flag.Int("inflight", 64, "requests in flight (seeds per round)")
	cpu := flag.Int("cpu", -1, "CPU to seed from (the veth receive path runs there) and to pin the interface's threaded NAPI to; -1: any")
	serverLink := flag.String("server-link", "", "the server program's pinned XDP link: also measure both programs' ns per run")
	flag.Parse()
	if err := run(*ifname, *clientsFile, *typ, *serverIP, *per, *rounds, *inflight, *cpu, *serverLink); err != nil {
		fmt.Fprintln(os.Stderr, "xdpwire:", err)
		os.Exit(1)
	}
}

func run(ifname, clientsFile, typ, serverIP string, per time.Duration, rounds, inflight, cpu int, serverLink string) error {
	if ifname == "" || clientsFile == "" || rounds < 1 || per <= 0 || inflight < 1 {
		return fmt.Errorf("-i, -clients, -t > 0, -rounds > 0 and -inflight > 0 are required")
	}
	clients, err := readClients(clientsFile)
	if err != nil {
		return err
	}
	mt := dhcpv4.MessageTypeDiscover
	var sid netip.Addr
	switch typ {
	case "discover":
	case "request":
		mt = dhcpv4.MessageTypeRequest
		if sid, err = netip.ParseAddr(serverIP); err != nil || !sid.Is4() {
			return fmt.Errorf("-server-ip %q: want the server's IPv4 address", serverIP)
		}
	default:
		return fmt.Errorf("-type %q: want discover or request", typ)
	}
	tmpl, off, err := xdpwire.Template(mt, sid)
	if err != nil {
		return err
	}
	// The seeds leave from -cpu, so the loop runs in its softirq; between seedings this thread
	// only keeps time, anywhere else, so it neither competes with the loop nor waits for it.
	runtime.LockOSThread()
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return err
	}
	pin := func(on bool) error {
		if cpu < 0 {
			return nil
		}
		set := all // off: any CPU but -cpu, if there is one
		if set.Clear(cpu); on || set.Count() == 0 {
			set.Zero()
			set.Set(cpu)
		}
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin to CPU %d: %w", cpu, err)
		}
		return nil
	}
	w, err := xdpwire.Attach(ifname, tmpl, off, clients, false)
	if err != nil {
		return err
	}
	defer w.Close()
	if cpu >= 0 {
		if err := pinNAPI(ifname, cpu); err != nil {
			return err
		}
	}
	// round runs one round: requests sent and replies received, and how long it lasted.
	round := func(r int) (uint64, uint64, time.Duration, error) {
		before, err := w.Stats()
		if err != nil {
			return 0, 0, 0, err
		}
		if err := pin(true); err != nil {
			return 0, 0, 0, err
		}
		start := time.Now()
		if err := w.Start(inflight, math.MaxInt64); err != nil {
			return 0, 0, 0, err
		}
		if err := pin(false); err != nil {
			return 0, 0, 0, err
		}
		time.Sleep(per)
		if err := w.Stop(); err != nil {
			return 0, 0, 0, err
		}
		d := time.Since(start)
		after, err := w.Settle(200*time.Millisecond, 5*time.Second)
		if err != nil {
			return 0, 0, 0, err
		}
		if e := after.SendErrors - before.SendErrors; e > 0 {
			return 0, 0, 0, fmt.Errorf("round %d: %d replies could not be turned into requests", r, e)
		}
		return after.Sent - before.Sent + uint64(inflight), after.Replies - before.Replies, d, nil
	}
	var sentRates, replyRates []float64
	var sent, replied uint64
	for r := 1; r <= rounds; r++ {
		g, rp, d, err := round(r)
		if err != nil {
			return err
		}
		sent += g
		replied += rp
		sentRates = append(sentRates, float64(g)/d.Seconds())
		replyRates = append(replyRates, float64(rp)/d.Seconds())
		fmt.Printf("round %d: %d %ss sent, %d replies received in %.3f s: %.0f sent/s, %.0f replies/s\n",
			r, g, strings.ToUpper(typ), rp, d.Seconds(), sentRates[r-1], replyRates[r-1])
	}
	fmt.Printf("summary sent/s %s replies/s %s sent %d replies %d\n", spread(sentRates), spread(replyRates), sent, replied)
	if serverLink == "" {
		return nil
	}
	return cost(w.Program(), serverLink, func() error { _, _, _, err := round(rounds + 1); return err })
}

// cost runs one round with the kernel's BPF run-time statistics on and prints the average ns per
// run of the client's program and of the server's (found by its pinned link).
func cost(client *ebpf.Program, serverLink string, round func() error) error {
	l, err := link.LoadPinnedLink(serverLink, nil)
	if err != nil {
		return fmt.Errorf("server link: %w", err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return fmt.Errorf("server link: %w", err)
	}
	server, err := ebpf.NewProgramFromID(info.Program)
	if err != nil {
		return fmt.Errorf("server program %d: %w", info.Program, err)
	}
	defer server.Close()
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return fmt.Errorf("BPF run-time statistics: %w", err)
	}
	defer stats.Close()
	read := func() (c, s *ebpf.ProgramStats, err error) {
		if c, err = client.Stats(); err == nil {
			s, err = server.Stats()
		}
		return c, s, err
	}
	c0, s0, err := read()
	if err != nil {
		return err
	}
	if err := round(); err != nil {
		return err
	}
	c1, s1, err := read()
	if err != nil {
		return err
	}
	cn, sn := c1.RunCount-c0.RunCount, s1.RunCount-s0.RunCount
	if cn == 0 || sn == 0 {
		return fmt.Errorf("cost round: the client's program ran %d times, the server's %d", cn, sn)
	}
	fmt.Printf("cost client_ns %.1f server_ns %.1f client_runs %d server_runs %d\n",
		float64(c1.Runtime-c0.Runtime)/float64(cn), float64(s1.Runtime-s0.Runtime)/float64(sn), cn, sn)
	return nil
}

// spread is "min median max" of v, rounded.
func spread(v []float64) string {
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return fmt.Sprintf("%.0f %.0f %.0f", s[0], med, s[len(s)-1])
}

func readClients(path string) ([]xdpwire.Client, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []xdpwire.Client
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"MAC IP\"", path, line)
		}
		mac, err := net.ParseMAC(fields[0])
		if err != nil || len(mac) != 6 {
			return nil, fmt.Errorf("%s:%d: MAC %q", path, line, fields[0])
		}
		ip, err := netip.ParseAddr(fields[1])
		if err != nil || !ip.Is4() {
			return nil, fmt.Errorf("%s:%d: IPv4 address %q", path, line, fields[1])
		}
		out = append(out, xdpwire.Client{MAC: mac, IP: ip})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no clients", path)
	}
	return out, nil
}

// pinNAPI pins ifname's threaded-NAPI kernel threads ("napi/IFNAME-ID"), if it has any, to cpu:
// with threaded NAPI the client end's receive path, and so the client's program, runs there.
func pinNAPI(ifname string, cpu int) error {
	prefix := "napi/" + ifname + "-"
	if len(prefix) > 15 { // the kernel keeps 15 bytes of a thread's name
		prefix = prefix[:15]
	}
	comms, err := filepath.Glob("/proc/[0-9]*/comm")
	if err != nil {
		return err
	}
	var set unix.CPUSet
	set.Set(cpu)
	for _, f := range comms {
		b, err := os.ReadFile(f)
		if err != nil || !strings.HasPrefix(string(b), prefix) {
			continue // gone, or not ours
		}
		pid, err := strconv.Atoi(strings.Split(f, "/")[2])
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(pid, &set); err != nil {
			return fmt.Errorf("pin %s's NAPI thread %d to CPU %d: %w", ifname, pid, cpu, err)
		}
	}
	return nil
}
