//go:build integration

package bootbench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tests/netns"
	"github.com/netbootd/netbootd/tests/qemu"
	"github.com/netbootd/netbootd/tests/xdppass"
)

// Environment of TestBootBench. It runs only with NETBOOTD_BENCH_BOOT=1 (scripts/bench-boot.sh,
// `make bench-boot` set it): `go test -tags integration ./tests/...` (make integration, CI)
// compiles it and skips it, because it boots up to 16 VMs one batch after another for minutes.
const (
	envRun     = "NETBOOTD_BENCH_BOOT"         // "1" runs the benchmark
	envN       = "NETBOOTD_BENCH_BOOT_N"       // VMs at once, a list: default "4 8"
	envServers = "NETBOOTD_BENCH_BOOT_SERVERS" // default "netbootd dnsmasq"
	envTable   = "NETBOOTD_BENCH_BOOT_TABLE"   // file the result table is written to (else the test log)
	envPrefix  = "NETBOOTD_BENCH_BOOT_PREFIX"  // namespace and pin-directory prefix, default "bb"
	envKeep    = "NETBOOTD_BENCH_BOOT_KEEP"    // directory to keep each run's pcap and server log in
	envTimeout = "NETBOOTD_BENCH_BOOT_TIMEOUT" // seconds a VM may take; default 90 + 35 per VM
)

const (
	serverIP = "10.10.0.1"
	httpPort = 8080
	bpffs    = "/run/netbootd-bench-bpffs" // outside /sys: `ip netns exec` remounts /sys per command
)

var httpBase = fmt.Sprintf("http://%s:%d", serverIP, httpPort)

// vmSpec is one machine: even indexes BIOS, odd UEFI, each reserved on both servers.
type vmSpec struct {
	name, mac, ip string
	fw            qemu.Firmware
}

func specs(n int) []vmSpec {
	var out []vmSpec
	for i := 0; i < n; i++ {
		fw, kind := qemu.BIOS, "bios"
		if i%2 == 1 {
			fw, kind = qemu.UEFI, "uefi"
		}
		out = append(out, vmSpec{name: fmt.Sprintf("%s%02d", kind, i/2+1), mac: fmt.Sprintf("52:54:00:00:10:%02x", i+1),
			ip: fmt.Sprintf("10.10.0.%d", 11+i), fw: fw})
	}
	return out
}

// netbootdConfig is tests/boot_test.go's rack: reservations, a pool, the payload profile, and
// IPv6 router advertisements answered by netbootd.
func netbootdConfig(assets string, vms []vmSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, `interface: {mode: authoritative, ipv6_ra: true}
http: {assets: %s}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
    options: {router: 10.10.0.1}
reservations:
`, assets)
	for _, v := range vms {
		fmt.Fprintf(&b, "  - {mac: %q, ip: %s, hostname: %s, labels: {role: worker}}\n", v.mac, v.ip, v.name)
	}
	b.WriteString(`profiles:
  - name: payload
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.host={{.Hostname}} netbootd.booted={{.BootedURL}}"
groups:
  - {name: workers, profile: payload, selector: {labels: {role: worker}}}
`)
	return b.String()
}

// dnsmasqScript is the iPXE script busybox httpd serves for dnsmasq: the same kernel command line
// as netbootd's profile renders, in one request instead of netbootd's chain and per-machine script.
var dnsmasqScript = `#!ipxe
kernel ` + httpBase + `/vmlinuz initrd=initrd.gz console=ttyS0 panic=-1 netbootd.host=${hostname} netbootd.booted=` + httpBase + `/booted?mac=${net0/mac}
initrd ` + httpBase + `/initrd.gz
boot
`

func dnsmasqArgs(tftpRoot, state string, vms []vmSpec) []string {
	args := []string{"--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=sv0", "--bind-interfaces",
		"--user=root", "--log-facility=-", "--quiet-dhcp", "--quiet-tftp", "--pid-file=",
		"--dhcp-leasefile=" + filepath.Join(state, "leases"),
		"--no-ping", "--dhcp-authoritative",
		"--dhcp-range=10.10.0.100,10.10.0.150,255.255.255.0,1h",
		"--dhcp-option=option:router," + serverIP}
	for _, v := range vms {
		args = append(args, fmt.Sprintf("--dhcp-host=%s,%s,%s", v.mac, v.ip, v.name))
	}
	return append(args,
		"--enable-tftp", "--tftp-root="+tftpRoot,
		// iPXE, from the NIC ROM or chainloaded, says so in its user class and option 175.
		"--dhcp-userclass=set:ipxe,iPXE", "--dhcp-match=set:ipxe,175",
		"--dhcp-match=set:bios,option:client-arch,0", "--dhcp-match=set:efi64,option:client-arch,7",
		"--dhcp-boot=tag:ipxe,"+httpBase+"/boot.ipxe",
		"--dhcp-boot=tag:!ipxe,tag:bios,undionly.kpxe,,"+serverIP,
		"--dhcp-boot=tag:!ipxe,tag:efi64,ipxe.efi,,"+serverIP,
		// 175.176 = 1: iPXE does not wait ~3 s for proxyDHCP offers.
		"--dhcp-option-force=tag:ipxe,175,b0:01:01",
		// 43.6 = 8: PXE firmware boots the file in this reply, no boot-server discovery (what
		// netbootd sends PXE clients).
		"--dhcp-option=tag:!ipxe,vendor:PXEClient,6,8",
	)
}

// lockedBuffer collects a process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// proc is a background process in a namespace.
type proc struct {
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
}

func start(t *testing.T, ns *netns.NS, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: ns.Cmd(t, name, args...), out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(syscall.SIGTERM) })
	return p
}

// stop signals the process and waits for it, killing it after 10 s.
func (p *proc) stop(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitFor polls cond until it holds; it fails the test after timeout or if p exits.
func (p *proc) waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		select {
		case <-p.done:
			t.Fatalf("%s: exited:\n%s", what, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready after %v:\n%s", what, timeout, p.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pinDir is a fresh pin directory on a bpffs outside /sys (tests/xdp_test.go's pinDir); the fast
// path pinned there is detached and the directory removed when the run ends.
func pinDir(t *testing.T, server *netns.NS, bin, prefix string) string {
	t.Helper()
	if err := os.MkdirAll(bpffs, 0o700); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(bpffs, &st); err != nil || st.Type != unix.BPF_FS_MAGIC {
		if err := unix.Mount("bpffs", bpffs, "bpf", 0, ""); err != nil {
			t.Fatalf("mount bpffs on %s: %v", bpffs, err)
		}
	}
	dir, err := os.MkdirTemp(bpffs, prefix+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = server.Exec(bin, "detach", "--pin-dir", dir, "sv0")
		_ = os.RemoveAll(dir)
	})
	return dir
}

var phases = machines.Phases

// result is one server's run with N VMs.
type result struct {
	server    string
	n         int
	err       string
	allBooted time.Duration   // first VM started to the last VM's "done" line
	failed    []string        // VMs not done in time, or done with the wrong address
	vmBoot    []time.Duration // each done VM: QEMU start to "done"
	shares    map[string]*Share
	vms       []vmSpec
	packets   int
	tcpdump   string // tcpdump's own counters (drops)
	// netbootd's timeline: per firmware and phase, each machine's offset from its first DHCP
	// and step from the phase before.
	offsets, steps map[qemu.Firmware]map[string][]time.Duration
}

// TestBootBench boots N VMs at once (half BIOS, half UEFI, reserved MACs) through netbootd and
// through dnsmasq with busybox httpd, capturing the LAN bridge, and writes a comparison table.
func TestBootBench(t *testing.T) {
	if os.Getenv(envRun) != "1" {
		t.Skipf("the boot benchmark runs only with %s=1 (make bench-boot)", envRun)
	}
	ns := []int{4, 8}
	if s := os.Getenv(envN); s != "" {
		ns = nil
		for _, f := range strings.Fields(s) {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 || n > 32 {
				t.Fatalf("%s=%q: want VM counts between 1 and 32", envN, s)
			}
			ns = append(ns, n)
		}
	}
	servers := []string{"netbootd", "dnsmasq"}
	if s := os.Getenv(envServers); s != "" {
		servers = strings.Fields(s)
	}
	for _, s := range servers {
		if s != "netbootd" && s != "dnsmasq" {
			t.Fatalf("%s: unknown server %q", envServers, s)
		}
	}
	prefix := os.Getenv(envPrefix)
	if prefix == "" {
		prefix = "bb"
	}
	netns.RequireRoot(t)
	qemu.Available(t)
	for _, tool := range []string{"tcpdump", "dnsmasq", "busybox", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("missing %s (make deps)", tool)
		}
	}
	payload := qemu.BuildPayload(t)

	var results []*result
	var setup []string
	for _, n := range ns {
		for _, server := range servers {
			r := &result{server: server, n: n}
			results = append(results, r)
			t.Run(fmt.Sprintf("%s-N%d", server, n), func(t *testing.T) {
				defer func() {
					if t.Failed() && r.err == "" {
						r.err = "run failed (see the log)"
					}
				}()
				s := run(t, r, payload, prefix)
				if len(setup) < len(servers) {
					setup = append(setup, s)
				}
			})
		}
	}
	table := report(results, setup)
	if path := os.Getenv(envTable); path != "" {
		writeFile(t, path, table)
	} else {
		t.Logf("\n%s", table)
	}
}

// run boots r.n VMs through r.server; it returns what the server was set up with.
func run(t *testing.T, r *result, payload qemu.Payload, prefix string) string {
	vms := specs(r.n)
	r.vms = vms
	timeout := time.Duration(90+35*r.n) * time.Second
	if s := os.Getenv(envTimeout); s != "" {
		secs, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s=%q", envTimeout, s)
		}
		timeout = time.Duration(secs) * time.Second
	}

	// The rack of tests/xdp_test.go: server namespace (sv0, 10.10.0.1/24) ─ veth ─ LAN namespace
	// (svp in bridge br0, XDP_PASS on it so XDP_TX frames cross), where the VMs' taps go. The same
	// rack for both servers.
	server, lan := netns.New(t, prefix+"s"), netns.New(t, prefix+"l")
	lan.Bridge(t, "br0")
	netns.Veth(t, server, "sv0", serverIP+"/24", lan, "svp", "")
	lan.Enslave(t, "svp", "br0")
	if err := lan.Do(t, func() error { return xdppass.Attach("svp", false) }); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	var setup string
	var srv *proc
	switch r.server {
	case "netbootd":
		bin := os.Getenv("NETBOOTD_BIN")
		if bin == "" {
			t.Fatal("NETBOOTD_BIN is not set: run scripts/bench-boot.sh (make bench-boot)")
		}
		assets := filepath.Join(dir, "assets")
		if err := os.Mkdir(assets, 0o755); err != nil {
			t.Fatal(err)
		}
		copyFile(t, payload.Kernel, filepath.Join(assets, "vmlinuz"))
		copyFile(t, payload.Initrd, filepath.Join(assets, "initrd.gz"))
		cfg := filepath.Join(dir, "netbootd.yaml")
		writeFile(t, cfg, netbootdConfig(assets, vms))
		pins := pinDir(t, server, bin, prefix)
		args := []string{"attach", "sv0", "--config", cfg, "--state-dir", filepath.Join(dir, "state"),
			"--http-listen", fmt.Sprintf("%s:%d", serverIP, httpPort), "--xdp", "generic", "--pin-dir", pins}
		srv = start(t, server, bin, args...)
		srv.waitFor(t, "netbootd", 20*time.Second, func() bool {
			out, err := server.Exec("curl", "-sf", httpBase+"/readyz")
			return err == nil && strings.Contains(out, "ready")
		})
		setup = "netbootd: netbootd " + strings.Join(args, " ") + "\n" +
			"  its own DHCP (XDP generic mode answers the reserved MACs' plain and PXE DHCP; iPXE goes to the control plane),\n" +
			"  TFTP (ipxe.efi from /usr/lib/ipxe, RFC 7440 windowsize), HTTP (chain script, per-machine script, /assets/ kernel and initrd),\n" +
			"  interface.ipv6_ra: true (its own \"no router\" RA on sv0); the config of tests/boot_test.go with " + strconv.Itoa(r.n) + " reservations"
	case "dnsmasq":
		tftpRoot, www := filepath.Join(dir, "tftp"), filepath.Join(dir, "www")
		for _, d := range []string{tftpRoot, www, filepath.Join(dir, "state")} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		copyFile(t, "/usr/lib/ipxe/ipxe.efi", filepath.Join(tftpRoot, "ipxe.efi"))
		copyFile(t, "/usr/lib/ipxe/undionly.kpxe", filepath.Join(tftpRoot, "undionly.kpxe"))
		copyFile(t, payload.Kernel, filepath.Join(www, "vmlinuz"))
		copyFile(t, payload.Initrd, filepath.Join(www, "initrd.gz"))
		writeFile(t, filepath.Join(www, "boot.ipxe"), dnsmasqScript)
		writeFile(t, filepath.Join(www, "booted"), "ok\n")
		httpdArgs := []string{"httpd", "-f", "-p", fmt.Sprintf("%s:%d", serverIP, httpPort), "-h", www}
		httpd := start(t, server, "busybox", httpdArgs...)
		// The same "no router" answer to router solicitations, from the harness, on the server's
		// interface as netbootd's ipv6_ra does.
		qemu.AnswerRouterSolicitations(t, server, "sv0")
		args := dnsmasqArgs(tftpRoot, filepath.Join(dir, "state"), vms)
		srv = start(t, server, "dnsmasq", args...)
		srv.waitFor(t, "dnsmasq", 10*time.Second, func() bool { return strings.Contains(srv.out.String(), "TFTP root") })
		httpd.waitFor(t, "busybox httpd", 10*time.Second, func() bool {
			_, err := server.Exec("curl", "-sf", "-o", "/dev/null", httpBase+"/boot.ipxe")
			return err == nil
		})
		shown := append([]string(nil), args...)
		for i, a := range shown {
			if strings.HasPrefix(a, "--dhcp-host=") && i > 0 && strings.HasPrefix(args[i-1], "--dhcp-host=") {
				shown[i] = ""
			}
		}
		setup = "dnsmasq " + dnsmasqVersion() + ": dnsmasq " + strings.Join(strings.Fields(strings.Join(shown, " ")), " ") +
			" (one --dhcp-host line per VM)\n" +
			"  its own DHCP and TFTP (ipxe.efi, undionly.kpxe); dnsmasq has no HTTP: busybox " + strings.Join(httpdArgs, " ") +
			" serves the iPXE script (one request, no chain), the kernel and the initrd;\n" +
			"  the harness's \"no router\" RA (qemu.AnswerRouterSolicitations) on sv0"
	}

	// One capture of the LAN bridge (promiscuous, so it sees what crosses between its ports).
	pcap := filepath.Join(dir, "lan.pcap")
	td := start(t, lan, "tcpdump", "-i", "br0", "-w", pcap, "--immediate-mode", "-B", "65536", "-s", "1024", "-n", "-Z", "root")
	td.waitFor(t, "tcpdump", 10*time.Second, func() bool { return strings.Contains(td.out.String(), "listening on") })

	type outcome struct {
		done time.Time
		err  error
	}
	outcomes := make([]outcome, len(vms))
	started := make([]time.Time, len(vms))
	booting := make([]*qemu.VM, len(vms))
	var wg sync.WaitGroup
	for i, v := range vms {
		vm := qemu.Start(t, lan, qemu.Options{Name: v.name, Bridge: "br0", MAC: v.mac, Firmware: v.fw, NoRouterAdvertisements: true})
		booting[i], started[i] = vm, vm.Started()
		wg.Add(1)
		go func() {
			defer wg.Done()
			left := timeout - time.Since(started[0])
			_, err := vm.WaitFor(qemu.Marker+" done", left)
			outcomes[i] = outcome{time.Now(), err}
		}()
	}
	t.Logf("%s, N=%d: %d VMs started, waiting up to %v", r.server, r.n, len(vms), timeout)
	wg.Wait()

	var last time.Time
	dhcpIP := regexp.MustCompile(qemu.Marker + ` dhcp ip=(\S+)`)
	for i, v := range vms {
		o := outcomes[i]
		if o.err != nil {
			r.failed = append(r.failed, fmt.Sprintf("%s: %v", v.name, o.err))
			serial := booting[i].Serial()
			if lines := strings.Split(serial, "\n"); len(lines) > 30 {
				serial = strings.Join(lines[len(lines)-30:], "\n")
			}
			t.Logf("%s did not boot: %v; serial tail:\n%s", v.name, o.err, serial)
			continue
		}
		if m := dhcpIP.FindStringSubmatch(booting[i].Serial()); m == nil || m[1] != v.ip {
			r.failed = append(r.failed, fmt.Sprintf("%s: payload did not get its reservation %s (%v)", v.name, v.ip, m))
			continue
		}
		r.vmBoot = append(r.vmBoot, o.done.Sub(started[i]))
		if o.done.After(last) {
			last = o.done
		}
	}
	if !last.IsZero() {
		r.allBooted = last.Sub(started[0])
	}
	time.Sleep(300 * time.Millisecond) // the callback's last packets
	td.stop(syscall.SIGINT)
	for _, l := range strings.Split(td.out.String(), "\n") {
		if strings.Contains(l, "dropped by kernel") || strings.Contains(l, "packets captured") {
			r.tcpdump += strings.TrimSpace(l) + "; "
		}
	}
	r.tcpdump = strings.TrimSuffix(r.tcpdump, "; ")

	f, err := os.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Analyze(f, netip.MustParseAddr(serverIP), httpPort)
	f.Close()
	if err != nil {
		t.Fatalf("analyse %s: %v", pcap, err)
	}
	r.packets, r.shares = c.Packets, c.Clients
	for _, v := range vms {
		s := c.Clients[v.mac]
		if s == nil {
			t.Logf("%s %s: no DHCP in the capture", v.name, v.mac)
			continue
		}
		d, ok := s.Duration()
		t.Logf("%s %s: network share %v (ok %v): %d DISCOVERs, last %s data %v before the payload's DHCP, HTTP %d B, TFTP %d B, %d packets resent, the last %v after the last new byte",
			v.name, v.mac, d.Round(time.Millisecond), ok, s.Discovers, s.LastKind, s.PayloadDHCP.Sub(s.LastData).Round(time.Millisecond),
			s.HTTPBytes, s.TFTPBytes, s.Retransmits, s.Tail().Round(time.Millisecond))
	}

	if r.server == "netbootd" {
		// The API is on the management listener, netbootd's default 127.0.0.1:9180 in the server namespace.
		out, err := server.Exec("curl", "-sf", "http://127.0.0.1:9180/api/v1/machines")
		var ms []machines.Machine
		if err == nil {
			err = json.Unmarshal([]byte(out), &ms)
		}
		if err != nil {
			t.Errorf("GET /api/v1/machines: %v: %s", err, out)
		}
		r.offsets, r.steps = timelineSplit(ms, vms)
	}

	if keep := os.Getenv(envKeep); keep != "" {
		if err := os.MkdirAll(keep, 0o755); err == nil {
			base := filepath.Join(keep, fmt.Sprintf("%s-N%d", r.server, r.n))
			_ = exec.Command("cp", pcap, base+".pcap").Run()
			_ = os.WriteFile(base+".log", []byte(srv.out.String()), 0o644)
		}
	}
	return strings.ReplaceAll(setup, dir, "$RUN")
}

func dnsmasqVersion() string {
	out, _ := exec.Command("dnsmasq", "--version").Output()
	if f := strings.Fields(string(out)); len(f) >= 3 {
		return f[2]
	}
	return "?"
}

// timelineSplit takes, per firmware and phase, each reserved machine's time from its first DHCP
// answer to the first event reaching the phase, and the step from the phase it reached before.
func timelineSplit(ms []machines.Machine, vms []vmSpec) (offsets, steps map[qemu.Firmware]map[string][]time.Duration) {
	offsets = map[qemu.Firmware]map[string][]time.Duration{}
	steps = map[qemu.Firmware]map[string][]time.Duration{}
	fw := map[string]qemu.Firmware{}
	for _, v := range vms {
		fw[v.mac] = v.fw
	}
	for _, m := range ms {
		f, ok := fw[strings.ToLower(m.MAC)]
		if !ok {
			continue
		}
		if offsets[f] == nil {
			offsets[f], steps[f] = map[string][]time.Duration{}, map[string][]time.Duration{}
		}
		first := map[string]time.Time{}
		for _, e := range m.Events {
			if _, seen := first[e.Phase]; e.Phase != "" && !seen {
				first[e.Phase] = e.Time
			}
		}
		prev := m.BootStarted
		for _, p := range phases {
			at, ok := first[p]
			if !ok {
				continue
			}
			offsets[f][p] = append(offsets[f][p], at.Sub(m.BootStarted))
			steps[f][p] = append(steps[f][p], at.Sub(prev))
			prev = at
		}
	}
	return offsets, steps
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func sum(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// shareList is the network shares of r's VMs, all of them or one firmware's.
func (r *result) shareList(only *qemu.Firmware) []time.Duration {
	var out []time.Duration
	for _, v := range r.vms {
		if only != nil && v.fw != *only {
			continue
		}
		if s := r.shares[v.mac]; s != nil {
			if d, ok := s.Duration(); ok {
				out = append(out, d)
			}
		}
	}
	return out
}

// tails is, per VM, how long the server went on resending after its last new byte.
func (r *result) tails() []time.Duration {
	var out []time.Duration
	for _, v := range r.vms {
		if s := r.shares[v.mac]; s != nil {
			if _, ok := s.Duration(); ok {
				out = append(out, s.Tail())
			}
		}
	}
	return out
}

func report(results []*result, setup []string) string {
	var b strings.Builder
	find := func(server string, n int) *result {
		for _, r := range results {
			if r.server == server && r.n == n {
				return r
			}
		}
		return nil
	}
	fmt.Fprintf(&b, "Boot storm: N VMs at once (half BIOS: SeaBIOS + QEMU's iPXE ROM; half UEFI: OVMF's PXE, ipxe.efi over TFTP, then HTTP),\n")
	fmt.Fprintf(&b, "reserved MACs, QEMU TCG on %d cores. all-booted: first VM started to the last payload \"done\" line.\n", runtime.NumCPU())
	fmt.Fprintf(&b, "network share (one tcpdump of br0, same analysis for both): per VM, first DHCP DISCOVER to the last server-to-client\n")
	fmt.Fprintf(&b, "data packet (HTTP or TFTP DATA, resent ones included) before the payload's own DHCP. resent: of the share sum,\n")
	fmt.Fprintf(&b, "the time after each VM's last new byte spent resending to it. ratio: netbootd / dnsmasq share, median (sum); goal <= 0.50.\n\n")
	row := "%-3v %-9s %10s %6v %11s %9s %9s %9s %9s %9s %7s %s\n"
	fmt.Fprintf(&b, row, "N", "server", "all-booted", "failed", "VM boot med", "share med", "share max", "share sum", "BIOS med", "UEFI med", "resent", "ratio")
	fmt.Fprintf(&b, row, "", "", "s", "", "s", "s", "s", "s", "s", "s", "s", "")
	bios, uefi := qemu.BIOS, qemu.UEFI
	for _, r := range results {
		if r.err != "" && r.shares == nil {
			fmt.Fprintf(&b, "%-3d %-9s %s\n", r.n, r.server, r.err)
			continue
		}
		all := r.shareList(nil)
		ab := "-"
		if r.allBooted > 0 {
			ab = secs(r.allBooted)
		}
		ratio := ""
		if r.server == "netbootd" {
			if d := find("dnsmasq", r.n); d != nil && len(d.shareList(nil)) > 0 && len(all) > 0 {
				ds := d.shareList(nil)
				ratio = fmt.Sprintf("%.2f (%.2f)", median(all).Seconds()/median(ds).Seconds(), sum(all).Seconds()/sum(ds).Seconds())
			}
		}
		fmt.Fprintf(&b, row, r.n, r.server, ab, len(r.vms)-len(r.vmBoot),
			secs(median(r.vmBoot)), secs(median(all)), secs(maxOf(all)), secs(sum(all)),
			secs(median(r.shareList(&bios))), secs(median(r.shareList(&uefi))), secs(sum(r.tails())), ratio)
	}
	for _, r := range results {
		for _, f := range r.failed {
			fmt.Fprintf(&b, "  failed, %s N=%d: %s\n", r.server, r.n, f)
		}
		if n := len(r.vms) - len(r.shareList(nil)); n > 0 && r.shares != nil {
			fmt.Fprintf(&b, "  %s N=%d: %d VM(s) without a network share in the capture\n", r.server, r.n, n)
		}
		if r.err != "" {
			fmt.Fprintf(&b, "  %s N=%d: %s\n", r.server, r.n, r.err)
		}
	}
	fmt.Fprintf(&b, "\ncaptures: ")
	for i, r := range results {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s N=%d: %d packets (%s)", r.server, r.n, r.packets, r.tcpdump)
	}
	b.WriteString("\n")

	header := false
	for _, r := range results {
		if r.server != "netbootd" || r.offsets == nil {
			continue
		}
		if !header {
			fmt.Fprintf(&b, "\nnetbootd's timeline (GET /api/v1/machines): median seconds from the machine's first DHCP answer to each phase\n")
			fmt.Fprintf(&b, "[median step from the phase before]\n")
			fmt.Fprintf(&b, "%-3s %-5s", "N", "fw")
			for _, p := range phases {
				fmt.Fprintf(&b, " %-15s", p)
			}
			b.WriteString("\n")
			header = true
		}
		for _, fw := range []qemu.Firmware{qemu.BIOS, qemu.UEFI} {
			fmt.Fprintf(&b, "%-3d %-5s", r.n, fw)
			for _, p := range phases {
				o := r.offsets[fw][p]
				if len(o) == 0 {
					fmt.Fprintf(&b, " %-15s", "-")
					continue
				}
				fmt.Fprintf(&b, " %-15s", fmt.Sprintf("%s [%s]", secs(median(o)), secs(median(r.steps[fw][p]))))
			}
			b.WriteString("\n")
		}
	}
	if len(setup) > 0 {
		b.WriteString("\nWhat each side got:\n")
		for _, s := range setup {
			b.WriteString("- " + s + "\n")
		}
	}
	return b.String()
}
