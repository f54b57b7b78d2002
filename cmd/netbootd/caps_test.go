package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/netbootd/netbootd/bpf"
	"github.com/netbootd/netbootd/control/config"
)

func caps(cs ...int) capSet {
	var s capSet
	for _, c := range cs {
		s |= 1 << uint(c)
	}
	return s
}

// authoritative is a default run: XDP on, DHCP, TFTP and HTTP on port 80.
var authoritative = capNeeds{
	Ports:        []boundPort{{"UDP", 67, "DHCP"}, {"UDP", 69, "TFTP"}, {"TCP", 80, "HTTP"}},
	PortStart:    1024,
	PacketSocket: true,
	XDP:          true,
}

var xdpSet = []int{unix.CAP_NET_BIND_SERVICE, unix.CAP_NET_RAW, unix.CAP_BPF, unix.CAP_NET_ADMIN, unix.CAP_PERFMON}

func TestCheckCapabilitiesMessage(t *testing.T) {
	all := ^capSet(0)
	withRA := authoritative
	withRA.RawICMPv6 = true
	highHTTP := authoritative
	highHTTP.Ports = []boundPort{{"UDP", 67, "DHCP"}, {"UDP", 69, "TFTP"}, {"TCP", 8080, "HTTP"}}
	noXDP := authoritative
	noXDP.XDP = false
	lowStart := authoritative
	lowStart.PortStart = 0 // net.ipv4.ip_unprivileged_port_start=0: no port is privileged
	mount := authoritative
	mount.MountBPFFS = true
	proxy := capNeeds{Ports: []boundPort{{"UDP", 67, "DHCP"}, {"UDP", 4011, "proxyDHCP"}, {"TCP", 80, "HTTP"}}, PortStart: 1024, PacketSocket: true}

	for _, tc := range []struct {
		name string
		need capNeeds
		have capSet
		want string // "" = passes
	}{
		{"root", authoritative, all, ""},
		{"root with bpffs to mount", mount, all, ""},
		{"exactly the XDP set", authoritative, caps(xdpSet...), ""},
		{"CAP_SYS_ADMIN stands in for the BPF three", authoritative, caps(unix.CAP_NET_BIND_SERVICE, unix.CAP_NET_RAW, unix.CAP_SYS_ADMIN), ""},
		{"xdp off needs two", noXDP, caps(unix.CAP_NET_BIND_SERVICE, unix.CAP_NET_RAW), ""},
		{"proxy needs two", proxy, caps(unix.CAP_NET_BIND_SERVICE, unix.CAP_NET_RAW), ""},
		{"no privileged ports", lowStart, caps(unix.CAP_NET_RAW, unix.CAP_BPF, unix.CAP_NET_ADMIN, unix.CAP_PERFMON), ""},
		{"nothing", authoritative, 0,
			"missing CAP_NET_BIND_SERVICE (bind UDP 67 for DHCP, UDP 69 for TFTP and TCP 80 for HTTP, ports below 1024), " +
				"CAP_NET_RAW (the AF_PACKET socket DHCP replies to clients without an address leave by), " +
				"CAP_BPF (create the XDP fast path's maps and load its program; or run with --xdp off), " +
				"CAP_NET_ADMIN (load and attach an XDP program; or run with --xdp off), " +
				"CAP_PERFMON (the verifier refuses the XDP program's packet-pointer arithmetic without it; or run with --xdp off); " +
				"running as uid 65534 with none of them; " +
				"this run needs CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_BPF CAP_NET_ADMIN CAP_PERFMON (systemd: AmbientCapabilities=, see deploy/systemd/README.md)"},
		{"no CAP_BPF", authoritative, caps(unix.CAP_NET_BIND_SERVICE, unix.CAP_NET_RAW, unix.CAP_NET_ADMIN, unix.CAP_PERFMON),
			"missing CAP_BPF (create the XDP fast path's maps and load its program; or run with --xdp off); " +
				"running as uid 65534 with CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_NET_ADMIN, CAP_PERFMON; " +
				"this run needs CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_BPF CAP_NET_ADMIN CAP_PERFMON (systemd: AmbientCapabilities=, see deploy/systemd/README.md)"},
		{"no CAP_NET_BIND_SERVICE, HTTP on 8080", highHTTP, caps(unix.CAP_NET_RAW, unix.CAP_BPF, unix.CAP_NET_ADMIN, unix.CAP_PERFMON),
			"missing CAP_NET_BIND_SERVICE (bind UDP 67 for DHCP and UDP 69 for TFTP, ports below 1024); " +
				"running as uid 65534 with CAP_NET_RAW, CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON; " +
				"this run needs CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_BPF CAP_NET_ADMIN CAP_PERFMON (systemd: AmbientCapabilities=, see deploy/systemd/README.md)"},
		{"router advertisements without CAP_NET_RAW", withRA, caps(unix.CAP_NET_BIND_SERVICE, unix.CAP_BPF, unix.CAP_NET_ADMIN, unix.CAP_PERFMON),
			"missing CAP_NET_RAW (the AF_PACKET socket DHCP replies to clients without an address leave by and the raw ICMPv6 socket of interface.ipv6_ra); " +
				"running as uid 65534 with CAP_NET_BIND_SERVICE, CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON; " +
				"this run needs CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_BPF CAP_NET_ADMIN CAP_PERFMON (systemd: AmbientCapabilities=, see deploy/systemd/README.md)"},
		{"bpffs to mount", mount, caps(xdpSet...),
			"missing CAP_SYS_ADMIN (mount bpffs on /sys/fs/bpf, where none is mounted; or mount it first (mount -t bpf bpffs /sys/fs/bpf) or give --pin-dir on a mounted bpffs); " +
				"running as uid 65534 with CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON; " +
				"this run needs CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_BPF CAP_NET_ADMIN CAP_PERFMON CAP_SYS_ADMIN (systemd: AmbientCapabilities=, see deploy/systemd/README.md)"},
		{"xdp off, nothing", noXDP, caps(unix.CAP_NET_ADMIN),
			"missing CAP_NET_BIND_SERVICE (bind UDP 67 for DHCP, UDP 69 for TFTP and TCP 80 for HTTP, ports below 1024), " +
				"CAP_NET_RAW (the AF_PACKET socket DHCP replies to clients without an address leave by); " +
				"running as uid 65534 with CAP_NET_ADMIN; " +
				"this run needs CAP_NET_BIND_SERVICE CAP_NET_RAW (systemd: AmbientCapabilities=, see deploy/systemd/README.md)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.need.check(tc.have, 65534)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAttachNeeds(t *testing.T) {
	off := false
	bpffs := t.TempDir() // not a bpffs: with a pin root outside /sys/fs/bpf nothing is mounted
	for _, tc := range []struct {
		name       string
		cfg        config.Config
		xdp        bpf.Mode
		http, pins string
		want       capNeeds
	}{
		{"authoritative", config.Config{Interface: config.Interface{Mode: config.ModeAuthoritative}}, bpf.ModeAuto, ":80", bpffs,
			capNeeds{Ports: []boundPort{{"UDP", 67, "DHCP"}, {"UDP", 69, "TFTP"}, {"TCP", 80, "HTTP"}}, PacketSocket: true, XDP: true}},
		{"xdp off, tftp off, http by name, ra", config.Config{Interface: config.Interface{Mode: config.ModeReservation, IPv6RA: true}, TFTP: config.TFTP{Enabled: &off}},
			bpf.ModeOff, "10.0.0.1:http", "",
			capNeeds{Ports: []boundPort{{"UDP", 67, "DHCP"}, {"TCP", 80, "HTTP"}}, PacketSocket: true, RawICMPv6: true}},
		{"proxy: no fast path", config.Config{Interface: config.Interface{Mode: config.ModeProxy}}, bpf.ModeNative, "[::]:8080", "",
			capNeeds{Ports: []boundPort{{"UDP", 67, "DHCP"}, {"UDP", 4011, "proxyDHCP"}, {"UDP", 69, "TFTP"}, {"TCP", 8080, "HTTP"}}, PacketSocket: true}},
		{"dhcp off: no DHCP ports, no packet socket, no fast path", config.Config{Interface: config.Interface{Mode: config.ModeProxy}, DHCP: config.DHCP{Enabled: &off}},
			bpf.ModeNative, ":8080", bpffs, capNeeds{Ports: []boundPort{{"UDP", 69, "TFTP"}, {"TCP", 8080, "HTTP"}}}},
		{"dhcp off, authoritative", config.Config{Interface: config.Interface{Mode: config.ModeAuthoritative}, DHCP: config.DHCP{Enabled: &off}},
			bpf.ModeAuto, ":80", bpffs, capNeeds{Ports: []boundPort{{"UDP", 69, "TFTP"}, {"TCP", 80, "HTTP"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := attachNeeds(&tc.cfg, tc.xdp, tc.http, tc.pins)
			if got.PortStart <= 0 {
				t.Errorf("PortStart = %d", got.PortStart)
			}
			got.PortStart = 0
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("needs (-want +got):\n%s", diff)
			}
		})
	}
}

// MountBPFFS follows what the fast path does: mount only for a pin root under /sys/fs/bpf
// that is not on a bpffs.
func TestAttachNeedsBPFFSMount(t *testing.T) {
	cfg := &config.Config{Interface: config.Interface{Mode: config.ModeAuthoritative}}
	want := !onBPFFS("/sys/fs/bpf")
	if got := attachNeeds(cfg, bpf.ModeAuto, ":80", "/sys/fs/bpf/netbootd").MountBPFFS; got != want {
		t.Errorf("default pin root: MountBPFFS = %v, want %v (bpffs on /sys/fs/bpf: %v)", got, want, !want)
	}
	if attachNeeds(cfg, bpf.ModeAuto, ":80", filepath.Join(t.TempDir(), "pins")).MountBPFFS {
		t.Errorf("a pin root outside /sys/fs/bpf is never mounted by netbootd")
	}
	if attachNeeds(cfg, bpf.ModeOff, ":80", "/sys/fs/bpf/netbootd").MountBPFFS {
		t.Errorf("--xdp off mounts nothing")
	}
}

// checkCapabilities reads the test process's own set: as root everything passes; unprivileged,
// an XDP run is refused.
func TestEffectiveCaps(t *testing.T) {
	have, err := effectiveCaps()
	if err != nil {
		t.Fatal(err)
	}
	err = checkCapabilities(authoritative)
	if want := authoritative.check(have, os.Getuid()); (err == nil) != (want == nil) || err != nil && err.Error() != want.Error() {
		t.Errorf("checkCapabilities = %v, want %v", err, want)
	}
	if have.has(unix.CAP_SYS_ADMIN) && have.has(unix.CAP_NET_BIND_SERVICE) && have.has(unix.CAP_NET_RAW) {
		if err != nil {
			t.Errorf("with %#x: %v", uint64(have), err)
		}
	} else if err == nil {
		t.Errorf("with %#x the XDP run passed", uint64(have))
	}
}
