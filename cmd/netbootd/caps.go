package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/config"
)

// capSet is a capability set, bit n for capability n (unix.CAP_*).
type capSet uint64

func (s capSet) has(c int) bool { return s&(1<<uint(c)) != 0 }

// capNames are the capabilities netbootd may need, in the order messages list them.
var capNames = []struct {
	c    int
	name string
}{
	{unix.CAP_NET_BIND_SERVICE, "CAP_NET_BIND_SERVICE"},
	{unix.CAP_NET_RAW, "CAP_NET_RAW"},
	{unix.CAP_BPF, "CAP_BPF"},
	{unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"},
	{unix.CAP_PERFMON, "CAP_PERFMON"},
	{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"},
}

// boundPort is a port `netbootd attach` binds.
type boundPort struct {
	Proto string // "UDP" or "TCP"
	Port  int
	For   string // what it serves: "DHCP", "TFTP", ...
}

// capNeeds is what one run of `netbootd attach` does that takes a capability. Measured on
// Linux 6.18 as user nobody with only ambient capabilities (deploy/systemd/README.md):
// SO_BINDTODEVICE needs none (the kernel asks CAP_NET_RAW only to change an existing binding),
// and the verifier refuses the program's packet-pointer arithmetic without CAP_PERFMON.
type capNeeds struct {
	Ports []boundPort
	// PortStart is net.ipv4.ip_unprivileged_port_start of this network namespace (it applies to
	// IPv6 too): binding a port below it takes CAP_NET_BIND_SERVICE.
	PortStart int
	// PacketSocket: the AF_PACKET socket DHCP replies to clients without an address go out of.
	PacketSocket bool
	RawICMPv6    bool // router advertisements (interface.ipv6_ra)
	XDP          bool // load and attach the fast path: maps, program, link
	// MountBPFFS: the pin directory is under /sys/fs/bpf and no bpffs is mounted there, so the
	// fast path mounts one.
	MountBPFFS bool
}

// attachNeeds says what `netbootd attach` will do with this configuration, --xdp mode, HTTP
// address and --pin-dir, reading the port sysctl and the pin directory's filesystem.
func attachNeeds(cfg *config.Config, xdp bpf.Mode, httpListen, pinRoot string) capNeeds {
	dhcp := cfg.DHCP.On()
	n := capNeeds{PortStart: unprivilegedPortStart(), PacketSocket: dhcp, RawICMPv6: cfg.Interface.IPv6RA || cfg.DHCP6.Enabled}
	proxy := cfg.Interface.Mode == config.ModeProxy
	if dhcp {
		n.Ports = append(n.Ports, boundPort{"UDP", 67, "DHCP"})
	}
	if dhcp && proxy {
		n.Ports = append(n.Ports, boundPort{"UDP", 4011, "proxyDHCP"})
	}
	if cfg.DHCP6.Enabled {
		n.Ports = append(n.Ports, boundPort{"UDP", 547, "DHCPv6"})
	}
	if cfg.TFTP.On() {
		n.Ports = append(n.Ports, boundPort{"UDP", 69, "TFTP"})
	}
	if _, port, err := net.SplitHostPort(httpListen); err == nil {
		if p, err := net.LookupPort("tcp", port); err == nil {
			n.Ports = append(n.Ports, boundPort{"TCP", p, "HTTP"})
		}
	}
	if xdp != bpf.ModeOff && !proxy && dhcp {
		n.XDP = true
		if pinRoot == "" {
			pinRoot = bpf.DefaultPinRoot
		}
		n.MountBPFFS = !onBPFFS(pinRoot) && strings.HasPrefix(filepath.Clean(pinRoot)+"/", "/sys/fs/bpf/")
	}
	return n
}

// checkCapabilities fails, naming every missing capability and what it is for, when this
// process lacks one the run needs. Root (every capability) passes.
func checkCapabilities(need capNeeds) error {
	have, err := effectiveCaps()
	if err != nil {
		return nil // cannot tell: let the operations themselves fail
	}
	return need.check(have, os.Getuid())
}

// required lists each capability the run needs, with what for, in capNames order.
func (n capNeeds) required() map[int]string {
	req := map[int]string{}
	var low []string
	for _, p := range n.Ports {
		if p.Port > 0 && p.Port < n.PortStart {
			low = append(low, fmt.Sprintf("%s %d for %s", p.Proto, p.Port, p.For))
		}
	}
	if len(low) > 0 {
		req[unix.CAP_NET_BIND_SERVICE] = "bind " + joinAnd(low) + ", ports below " + strconv.Itoa(n.PortStart)
	}
	var raw []string
	if n.PacketSocket {
		raw = append(raw, "the AF_PACKET socket DHCP replies to clients without an address leave by")
	}
	if n.RawICMPv6 {
		raw = append(raw, "the raw ICMPv6 socket of interface.ipv6_ra")
	}
	if len(raw) > 0 {
		req[unix.CAP_NET_RAW] = joinAnd(raw)
	}
	if n.XDP {
		req[unix.CAP_BPF] = "create the XDP fast path's maps and load its program; or run with --xdp off"
		req[unix.CAP_NET_ADMIN] = "load and attach an XDP program; or run with --xdp off"
		req[unix.CAP_PERFMON] = "the verifier refuses the XDP program's packet-pointer arithmetic without it; or run with --xdp off"
	}
	if n.MountBPFFS {
		req[unix.CAP_SYS_ADMIN] = "mount bpffs on /sys/fs/bpf, where none is mounted; or mount it first (mount -t bpf bpffs /sys/fs/bpf) or give --pin-dir on a mounted bpffs"
	}
	return req
}

// satisfied: CAP_SYS_ADMIN stands in for CAP_BPF, CAP_PERFMON and, for BPF, CAP_NET_ADMIN
// (the kernel's bpf_capable, perfmon_capable and bpf_net_capable).
func satisfied(have capSet, c int) bool {
	if have.has(c) {
		return true
	}
	switch c {
	case unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_NET_ADMIN:
		return have.has(unix.CAP_SYS_ADMIN)
	}
	return false
}

// check is checkCapabilities with the effective set and uid given.
func (n capNeeds) check(have capSet, uid int) error {
	req := n.required()
	var missing, all, held []string
	for _, cn := range capNames {
		why, ok := req[cn.c]
		if ok {
			all = append(all, cn.name)
			if !satisfied(have, cn.c) {
				missing = append(missing, fmt.Sprintf("%s (%s)", cn.name, why))
			}
		}
		if have.has(cn.c) {
			held = append(held, cn.name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	heldText := "none of them"
	if len(held) > 0 {
		heldText = strings.Join(held, ", ")
	}
	return fmt.Errorf("missing %s; running as uid %d with %s; this run needs %s (systemd: AmbientCapabilities=, see deploy/systemd/README.md)",
		strings.Join(missing, ", "), uid, heldText, strings.Join(all, " "))
}

// effectiveCaps is the calling thread's effective set; netbootd never changes it, so every
// thread has the same.
func effectiveCaps() (capSet, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	return capSet(data[0].Effective) | capSet(data[1].Effective)<<32, nil
}

// unprivilegedPortStart reads net.ipv4.ip_unprivileged_port_start (1024 when unreadable).
func unprivilegedPortStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
	if err != nil {
		return 1024
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 1024
	}
	return n
}

// onBPFFS reports whether the nearest ancestor of dir that statfs reaches is on a bpf
// filesystem: the fast path's own test of whether it must mount one.
func onBPFFS(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err == nil {
			return st.Type == unix.BPF_FS_MAGIC
		}
		if d == "/" {
			return false
		}
	}
}

// joinAnd joins "a", "a and b", "a, b and c".
func joinAnd(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}
