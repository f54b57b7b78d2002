// Command stormbench simulates a rack of UEFI machines booting at once, each with its own MAC,
// doing in order what real firmware does (as seen from Debian's iPXE and OVMF; the README's
// benchmark section says what is simulated): PXE DHCP with the firmware's options and
// timeouts, TFTP of the boot file (half lock-step, half windowsize 4 after a size probe, as
// EDK2 does), iPXE's DHCP (user class iPXE), then HTTP: the scripts, the kernel and the initrds.
//
// DHCP goes out as raw frames from each machine's MAC on one interface; once leased, the
// machine gets a macvlan on that interface with its MAC and address, and its TFTP and HTTP
// leave from there, so the server sees each machine at its own MAC. It runs in a namespace its caller made (scripts/bench-storm.sh,
// tests/stormbench_test.go), prints a summary and, with -json, every machine's steps.
//
//	stormbench -i cl0 -n 200 -json out.json -tftp-file ipxe.efi -kernel-file vmlinuz -initrd-file initrd.img
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/vishvananda/netlink"
)

type machine struct {
	index int
	mac   net.HardwareAddr
	uuid  [16]byte
	style tftpStyle
	ip    net.IP
	dev   string // its interface, once leased
}

// result is one machine's boot: each step's time from power-on, what it fetched, its resends.
type result struct {
	MAC          string  `json:"mac"`
	IP           string  `json:"ip,omitempty"`
	TFTPStyle    string  `json:"tftp_style"`
	Error        string  `json:"error,omitempty"`
	Step         string  `json:"failed_step,omitempty"`
	PXEDHCP      float64 `json:"pxe_dhcp_s,omitempty"`
	TFTP         float64 `json:"tftp_s,omitempty"`
	IPXEDHCP     float64 `json:"ipxe_dhcp_s,omitempty"`
	Start        float64 `json:"start_s"`          // power-on, seconds from the storm's start
	Done         float64 `json:"done_s,omitempty"` // seconds from the storm's start
	DHCPRetries  int     `json:"dhcp_retries"`
	TFTPRetries  int     `json:"tftp_retries"`
	TFTPSeconds  float64 `json:"tftp_seconds,omitempty"` // the TFTP step alone
	TFTPDups     int     `json:"tftp_dup_data"`          // DATA blocks the server sent again, already received
	TFTPWaitP50  float64 `json:"tftp_block_wait_p50_ms,omitempty"`
	TFTPWaitP99  float64 `json:"tftp_block_wait_p99_ms,omitempty"`
	tftpWaits    []time.Duration
	tftpTurns    []time.Duration
	tftpLates    []time.Duration
	BootFile     string `json:"boot_file,omitempty"`
	BootFileSize int64  `json:"boot_file_bytes,omitempty"`
	BootFileSum  string `json:"boot_file_crc32c,omitempty"`
	Scripts      []file `json:"scripts,omitempty"`
	Kernel       *file  `json:"kernel,omitempty"`
	Initrds      []file `json:"initrds,omitempty"`
}

type file struct {
	URL     string  `json:"url"`
	Bytes   int64   `json:"bytes"`
	CRC32C  string  `json:"crc32c"`
	Seconds float64 `json:"seconds"` // request to last byte
}

func toFile(f fetched) file {
	return file{URL: f.url, Bytes: f.bytes, CRC32C: hex.EncodeToString(f.sum), Seconds: f.seconds}
}

// summary is what the benchmark script reads.
type summary struct {
	Machines    int     `json:"machines"`
	Done        int     `json:"done"`
	Failed      int     `json:"failed"`
	LastDone    float64 `json:"last_done_s"`
	DHCPRetries int     `json:"dhcp_retries"`
	TFTPRetries int     `json:"tftp_retries"`
	// The TFTP step alone, by style: median seconds; DATA blocks received twice; lock-step
	// blocks' wait (the client's ACK to the next block) at the median and 99th percentile.
	TFTPLockStepMed float64 `json:"tftp_lockstep_med_s"`
	TFTPWindowMed   float64 `json:"tftp_window_med_s"`
	TFTPDups        int     `json:"tftp_dup_data"`
	TFTPWaitP50     float64 `json:"tftp_lockstep_wait_p50_ms"`
	TFTPWaitP99     float64 `json:"tftp_lockstep_wait_p99_ms"`
	// The wait split at the block's arrival in the client's socket: the turn (the client's
	// packet out, the server, the block back) and the simulator's own lateness in reading the
	// block, which real firmware, alone on its machine, does not have.
	TFTPTurnP50 float64  `json:"tftp_lockstep_turn_p50_ms"`
	TFTPTurnP99 float64  `json:"tftp_lockstep_turn_p99_ms"`
	TFTPLateP50 float64  `json:"tftp_lockstep_late_p50_ms"`
	TFTPLateP99 float64  `json:"tftp_lockstep_late_p99_ms"`
	Errors      []string `json:"errors,omitempty"`
	// ClientCPU is the simulator's own CPU time (user+system) during the storm, its TFTP
	// helper's included: on a machine it shares with the server, time it takes is time the
	// server does not get.
	ClientCPU float64  `json:"client_cpu_s"`
	Phases    []phase  `json:"phases"`
	Results   []result `json:"results"`
}

func main() {
	if os.Getenv(helperEnv) == "1" {
		if err := runTFTPHelper(); err != nil {
			fmt.Fprintln(os.Stderr, "stormbench tftp helper:", err)
			os.Exit(1)
		}
		return
	}
	ifname := flag.String("i", "", "client interface (in a namespace the caller made)")
	n := flag.Int("n", 200, "machines (at most 4096)")
	ramp := flag.Duration("ramp", time.Second, "power-on spread: machine i starts at i*ramp/n")
	timeout := flag.Duration("timeout", 15*time.Minute, "give up on machines not done by then")
	macPrefix := flag.Uint("mac-prefix", 0x5b, "third byte of every MAC (02:00:PREFIX:..): distinct runs, distinct MACs")
	jsonOut := flag.String("json", "", "write the summary and every machine's steps here")
	tftpFile := flag.String("tftp-file", "", "a local copy of the boot file: any other size or CRC-32C is a failure")
	kernelFile := flag.String("kernel-file", "", "a local copy of the kernel")
	initrdFile := flag.String("initrd-file", "", "a local copy of the initrd")
	stopAfter := flag.String("stop-after", "", "end each machine's boot after this step (tftp: no HTTP), to time a step without the others' load")
	loadURL := flag.String("load-url", "", "instead of a storm: the HTTP asset load alone, on this URL")
	loadClients := flag.Int("load-clients", 64, "load: clients at once, each from its own address")
	loadFrom := flag.String("load-from", "", "load: the first client address (the others follow it), already on the interface")
	loadRanges := flag.Int("load-ranges", 8, "load: Range requests per client after its whole download")
	loadRangeMiB := flag.Int64("load-range-mib", 1, "load: MiB per Range request")
	loadFile := flag.String("load-file", "", "load: a local copy of the file, to check every byte")
	flag.Parse()
	if *loadURL != "" {
		from, err := netip.ParseAddr(*loadFrom)
		if err != nil || *loadFile == "" || *loadClients < 1 {
			fmt.Fprintln(os.Stderr, "stormbench: -load-url needs -load-from ADDR, -load-file PATH and -load-clients >= 1")
			os.Exit(2)
		}
		r, err := assetLoad(*loadURL, *loadClients, from, *loadRanges, *loadRangeMiB<<20, *loadFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "stormbench:", err)
			os.Exit(1)
		}
		fmt.Printf("clients=%d requests=%d range_requests=%d failed=%d bytes=%d seconds=%.2f mib_per_s=%.1f client_cpu_s=%.2f\n",
			r.Clients, r.Requests, r.Ranges, r.Failed, r.Bytes, r.Seconds, float64(r.Bytes)/(1<<20)/r.Seconds, cpuSeconds())
		for _, e := range r.Errors {
			fmt.Println("  error:", e)
		}
		return
	}
	if *ifname == "" || *n < 1 || *n > 4096 || (*stopAfter != "" && *stopAfter != "tftp") {
		fmt.Fprintln(os.Stderr, "stormbench: -i IFACE, 1 <= -n <= 4096, -stop-after empty or tftp")
		os.Exit(2)
	}
	var want checks
	var err error
	for _, c := range []struct {
		e    **expected
		path string
	}{{&want.tftp, *tftpFile}, {&want.kernel, *kernelFile}, {&want.initrd, *initrdFile}} {
		if *c.e, err = expect(c.path); err != nil {
			fmt.Fprintln(os.Stderr, "stormbench:", err)
			os.Exit(2)
		}
	}
	want.stopAfterTFTP = *stopAfter == "tftp"
	s, err := storm(*ifname, *n, *ramp, *timeout, byte(*macPrefix), want)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stormbench:", err)
		os.Exit(1)
	}
	fmt.Printf("machines=%d done=%d failed=%d last_done_s=%.2f dhcp_retries=%d tftp_retries=%d"+
		" tftp_lockstep_med_s=%.2f tftp_window_med_s=%.2f tftp_dup_data=%d tftp_lockstep_wait_p50_ms=%.2f tftp_lockstep_wait_p99_ms=%.2f"+
		" tftp_lockstep_turn_p50_ms=%.2f tftp_lockstep_turn_p99_ms=%.2f tftp_lockstep_late_p50_ms=%.2f tftp_lockstep_late_p99_ms=%.2f client_cpu_s=%.2f\n",
		s.Machines, s.Done, s.Failed, s.LastDone, s.DHCPRetries, s.TFTPRetries,
		s.TFTPLockStepMed, s.TFTPWindowMed, s.TFTPDups, s.TFTPWaitP50, s.TFTPWaitP99,
		s.TFTPTurnP50, s.TFTPTurnP99, s.TFTPLateP50, s.TFTPLateP99, s.ClientCPU)
	printPhases(os.Stdout, s.Phases)
	for _, e := range s.Errors {
		fmt.Println("  error:", e)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(s, "", " ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "stormbench:", err)
			os.Exit(1)
		}
	}
}

// checks are what the fetched files must be (nil checks nothing), and the step to stop after.
type checks struct {
	tftp, kernel, initrd *expected
	stopAfterTFTP        bool
}

func storm(ifname string, n int, ramp, timeout time.Duration, prefix byte, want checks) (*summary, error) {
	w, err := openWire(ifname)
	if err != nil {
		return nil, err
	}
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, err
	}
	ms := make([]*machine, n)
	for i := range ms {
		m := &machine{index: i, mac: net.HardwareAddr{0x02, 0x00, prefix, byte(i >> 16), byte(i >> 8), byte(i)}, style: styleLockStep}
		if i%2 == 1 {
			m.style = styleEDK2
		}
		_, _ = rand.Read(m.uuid[:])
		ms[i] = m
	}
	if err := isolateARP(); err != nil {
		return nil, err
	}
	net := &addrs{parent: link}
	defer net.removeAll()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tftp, err := startTFTPHelper()
	if err != nil {
		return nil, err
	}
	cpu0 := cpuSeconds()
	start := time.Now()
	results := make([]result, n)
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(time.Duration(i) * ramp / time.Duration(n)):
			case <-ctx.Done():
			}
			results[i] = m.boot(ctx, w, net, tftp, start, want)
			results[i].Start = (time.Duration(i) * ramp / time.Duration(n)).Seconds()
		}()
	}
	wg.Wait()
	helperCPU, err := tftp.close()
	if err != nil {
		return nil, fmt.Errorf("tftp helper: %w", err)
	}
	s := &summary{Machines: n, Results: results, ClientCPU: cpuSeconds() - cpu0 + helperCPU, Phases: phases(results)}
	seen := map[string]int{}
	var lockStep, window []float64
	var waits, turns, lates []time.Duration
	for _, r := range results {
		s.DHCPRetries += r.DHCPRetries
		s.TFTPRetries += r.TFTPRetries
		s.TFTPDups += r.TFTPDups
		if r.TFTPSeconds > 0 {
			if r.TFTPStyle == styleLockStep.name {
				lockStep = append(lockStep, r.TFTPSeconds)
				waits = append(waits, r.tftpWaits...)
				turns, lates = append(turns, r.tftpTurns...), append(lates, r.tftpLates...)
			} else {
				window = append(window, r.TFTPSeconds)
			}
		}
		if r.Error != "" {
			s.Failed++
			seen[r.Step+": "+r.Error]++
			continue
		}
		s.Done++
		s.LastDone = max(s.LastDone, r.Done)
	}
	s.TFTPLockStepMed, s.TFTPWindowMed = median(lockStep), median(window)
	s.TFTPWaitP50, s.TFTPWaitP99 = percentileMs(waits, 50), percentileMs(waits, 99)
	s.TFTPTurnP50, s.TFTPTurnP99 = percentileMs(turns, 50), percentileMs(turns, 99)
	s.TFTPLateP50, s.TFTPLateP99 = percentileMs(lates, 50), percentileMs(lates, 99)
	for e, c := range seen {
		s.Errors = append(s.Errors, fmt.Sprintf("%d machines: %s", c, e))
	}
	slices.Sort(s.Errors)
	return s, nil
}

func (m *machine) boot(ctx context.Context, w *wire, a *addrs, tftp *tftpHelper, start time.Time, want checks) result {
	r := result{MAC: m.mac.String(), TFTPStyle: m.style.name}
	since := func() float64 { return time.Since(start).Seconds() }
	fail := func(step string, err error) result {
		r.Step, r.Error = step, err.Error()
		return r
	}
	// 1. The NIC's PXE firmware: an address and a boot file.
	ack, retries, err := w.lease(ctx, m, stagePXE)
	r.DHCPRetries += retries
	if err != nil {
		return fail("pxe dhcp", err)
	}
	r.PXEDHCP = since()
	if err := m.take(a, ack); err != nil {
		return fail("pxe dhcp", err)
	}
	r.IP = m.ip.String()
	next, bootFile := ack.ServerIPAddr, ack.BootFileName
	if o := ack.BootFileNameOption(); o != "" {
		bootFile = o
	}
	if next.IsUnspecified() || bootFile == "" {
		return fail("pxe dhcp", fmt.Errorf("no next-server (%v) or boot file (%q) in the ACK", next, bootFile))
	}
	r.BootFile = bootFile
	// 2. TFTP of the boot file (ipxe.efi).
	t, err := tftp.get(ctx, m.dev, m.ip, next, bootFile, m.style)
	r.TFTPRetries += t.retries
	r.TFTPDups = t.dups
	if err != nil {
		return fail("tftp", err)
	}
	r.TFTPSeconds = since() - r.PXEDHCP
	r.tftpWaits, r.tftpTurns, r.tftpLates = t.waits, t.turns, t.lates
	r.TFTPWaitP50, r.TFTPWaitP99 = percentileMs(t.waits, 50), percentileMs(t.waits, 99)
	r.TFTP, r.BootFileSize, r.BootFileSum = since(), t.bytes, hex.EncodeToString(t.sum)
	if err := want.tftp.check(bootFile, r.BootFileSize, r.BootFileSum); err != nil {
		return fail("tftp", err)
	}
	if want.stopAfterTFTP {
		r.Done = r.TFTP
		return r
	}
	// 3. iPXE's own DHCP: where its script is.
	ack, retries, err = w.lease(ctx, m, stageIPXE)
	r.DHCPRetries += retries
	if err != nil {
		return fail("ipxe dhcp", err)
	}
	r.IPXEDHCP = since()
	if err := m.take(a, ack); err != nil {
		return fail("ipxe dhcp", err)
	}
	script := ack.BootFileName
	if o := ack.BootFileNameOption(); o != "" {
		script = o
	}
	if !strings.HasPrefix(script, "http://") {
		return fail("ipxe dhcp", fmt.Errorf("boot file %q for iPXE is not an http:// URL", script))
	}
	// 4. HTTP: the scripts, the kernel, the initrds.
	c := httpClient(m.dev, m.ip)
	defer c.CloseIdleConnections()
	var b booted
	err = m.runScript(ctx, c, script, &b)
	for _, f := range b.scripts {
		r.Scripts = append(r.Scripts, toFile(f))
	}
	if b.kernel.url != "" {
		k := toFile(b.kernel)
		r.Kernel = &k
	}
	for _, f := range b.initrds {
		r.Initrds = append(r.Initrds, toFile(f))
	}
	if err != nil {
		return fail("http", err)
	}
	if err := want.kernel.check("kernel "+r.Kernel.URL, r.Kernel.Bytes, r.Kernel.CRC32C); err != nil {
		return fail("http", err)
	}
	if want.initrd != nil && len(r.Initrds) != 1 {
		return fail("http", fmt.Errorf("initrds %+v, want one", r.Initrds))
	}
	for _, f := range r.Initrds {
		if err := want.initrd.check("initrd "+f.URL, f.Bytes, f.CRC32C); err != nil {
			return fail("http", err)
		}
	}
	r.Done = since()
	return r
}

// take puts the ACK's address on the client interface for the machine's TCP and UDP.
func (m *machine) take(a *addrs, ack *dhcpv4.DHCPv4) error {
	ip := ack.YourIPAddr.To4()
	if ip == nil || ip.IsUnspecified() {
		return errors.New("ACK without an address")
	}
	if m.ip.Equal(ip) {
		return nil
	}
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ip.DefaultMask()
	}
	dev, err := a.add(m, ip, &net.IPNet{IP: ip.Mask(mask), Mask: mask})
	if err != nil {
		return err
	}
	m.ip, m.dev = ip, dev
	return nil
}

// addrs gives each leased machine its own interface on the client link: a macvlan with the
// machine's MAC holding its address, so ARP and the server's neighbour table see the machine as
// a real one (netbootd proves a machine's HTTP requests by its address's MAC).
type addrs struct {
	parent netlink.Link
	mu     sync.Mutex
	made   []netlink.Link
}

// add puts ip (in subnet) on m's interface, making it on first use; it answers its name.
func (a *addrs) add(m *machine, ip net.IP, subnet *net.IPNet) (string, error) {
	name := fmt.Sprintf("sb%d", m.index)
	l, err := netlink.LinkByName(name)
	if err != nil {
		mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: name, HardwareAddr: m.mac, ParentIndex: a.parent.Attrs().Index},
			Mode: netlink.MACVLAN_MODE_BRIDGE}
		if err := netlink.LinkAdd(mv); err != nil {
			return "", fmt.Errorf("macvlan %s: %w", name, err)
		}
		a.mu.Lock()
		a.made = append(a.made, mv)
		a.mu.Unlock()
		if err := netlink.LinkSetUp(mv); err != nil {
			return "", err
		}
		l = mv
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: subnet.Mask}}
	if err := netlink.AddrAdd(l, addr); err != nil {
		return "", fmt.Errorf("add %s to %s: %w", ip, name, err)
	}
	return name, nil
}

func (a *addrs) removeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.made {
		_ = netlink.LinkDel(l)
	}
}

// isolateARP makes each interface answer ARP only for its own addresses, so the server learns
// each machine's MAC, not whichever interface answered first.
func isolateARP() error {
	for k, v := range map[string]string{"arp_ignore": "1", "arp_announce": "2", "rp_filter": "0"} {
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/all/"+k, []byte(v), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func newXID() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// percentileMs is the p-th percentile of ds in milliseconds (0 for none).
func percentileMs(ds []time.Duration, p int) float64 {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return float64(ds[min(len(ds)*p/100, len(ds)-1)]) / float64(time.Millisecond)
}
