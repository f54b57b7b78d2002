// Package bpf loads, attaches, pins and feeds netbootd's XDP fast path (netbootd.c): DHCPv4, and
// DHCPv6 SOLICIT and REQUEST, for reserved MACs answered in the kernel. The program, its link and its maps are pinned under
// /sys/fs/bpf/netbootd/<iface>/, so reserved machines keep getting answers while the daemon
// restarts; a new daemon adopts what is pinned. It never logs: callers decide what to say.
package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// DefaultPinRoot is where every interface's objects are pinned unless configured otherwise.
const DefaultPinRoot = "/sys/fs/bpf/netbootd"

// pinnedMaps are the maps a restarted daemon adopts (the program's .bss is not one of them).
var pinnedMaps = []string{netbootdMapConfig, netbootdMapCounters, netbootdMapReservations, netbootdMapBootParams, netbootdMapEvents,
	netbootdMapConfig6, netbootdMapReplies6}

// bpffsMagic is the statfs type of a bpf filesystem.
const bpffsMagic = 0xcafe4a11

// Mode is how the program is attached.
type Mode int

const (
	ModeOff Mode = iota
	ModeAuto
	ModeNative
	ModeGeneric
)

func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeNative:
		return "native"
	case ModeGeneric:
		return "generic"
	}
	return "off"
}

// ParseMode reads --xdp.
func ParseMode(s string) (Mode, error) {
	for _, m := range []Mode{ModeOff, ModeAuto, ModeNative, ModeGeneric} {
		if m.String() == s {
			return m, nil
		}
	}
	return ModeOff, fmt.Errorf("--xdp %q: want auto, native, generic or off", s)
}

// Config is what Attach needs.
type Config struct {
	Iface    string
	Mode     Mode // auto: native, falling back to generic
	ServerIP netip.Addr
	PinRoot  string // default DefaultPinRoot; must be on a bpf filesystem
	Storm    Storm
	// Relays may set giaddr; set before the program is attached, so a relayed reserved
	// machine is answered from the first packet.
	Relays []Relay
	// Replace takes the interface over from another XDP program attached there; without it,
	// Attach refuses (ErrForeignProgram) rather than cut off whoever put it there.
	Replace bool
}

// ErrForeignProgram: the interface runs an XDP program that is not netbootd's.
var ErrForeignProgram = errors.New("the interface already runs another XDP program")

// Storm is how the program protects the control plane from floods; zero values turn each off.
type Storm struct {
	// DuplicateWindow drops a DISCOVER repeating a MAC and xid seen this recently.
	DuplicateWindow time.Duration
	// SourceRate and SourceBurst limit every request the program passes up, per Ethernet
	// source; configured relays are exempt (a relay speaks for a whole rack).
	SourceRate, SourceBurst uint64
	// StrangerRate and StrangerBurst limit requests from all unknown MACs together. MACs with a
	// lease (SetKnown) and reserved MACs are exempt from this one.
	StrangerRate, StrangerBurst uint64
}

// FastPath is the attached program and its maps.
type FastPath struct {
	objs    netbootdObjects
	link    link.Link
	mode    Mode
	adopted bool
	pinDir  string
	// mountedBPFFS: nothing was mounted on /sys/fs/bpf, so Attach mounted it. In a private mount
	// namespace (ip netns exec) such a mount, and the pins in it, end with the process.
	mountedBPFFS bool
	// server and mac are what every reply is sent from: kept for SetStorm's rewrite.
	server netip.Addr
	mac    net.HardwareAddr

	resMirror    mapMirror[netbootdResKey, netbootdResVal]
	bootMirror   mapMirror[netbootdBootKey, netbootdBootVal]
	reply6Mirror mapMirror[netbootdBootKey, netbootdReply6Val]
	// The known map is an LRU: the kernel may evict from it, so it is read back now and then.
	knownMirror mapMirror[netbootdResKey, uint8]
}

// MountedBPFFS reports whether Attach had to mount /sys/fs/bpf itself.
func (f *FastPath) MountedBPFFS() bool { return f.mountedBPFFS }

// PinDir is where the program, link and maps are pinned.
func (f *FastPath) PinDir() string { return f.pinDir }

// Attach loads the program and attaches it to cfg.Iface, or adopts the program already pinned
// there (replacing it atomically through its link, so there is no moment without an answer).
func Attach(cfg Config) (*FastPath, error) {
	iface, err := net.InterfaceByName(cfg.Iface)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", cfg.Iface, err)
	}
	if !cfg.ServerIP.Is4() {
		return nil, errors.New("fast path: an IPv4 server address is required")
	}
	if cfg.PinRoot == "" {
		cfg.PinRoot = DefaultPinRoot
	}
	mounted, err := ensureBPFFS(cfg.PinRoot)
	if err != nil {
		return nil, err
	}
	f := &FastPath{pinDir: PinDir(cfg.PinRoot, cfg.Iface), mountedBPFFS: mounted}
	f.knownMirror.fullEvery = 30 // SetKnown runs every 2 s: a full pass a minute
	if err := os.MkdirAll(f.pinDir, 0o700); err != nil {
		return nil, fmt.Errorf("pin directory: %w", err)
	}
	spec, err := loadNetbootd()
	if err != nil {
		return nil, err
	}
	for _, name := range pinnedMaps {
		spec.Maps[name].Pinning = ebpf.PinByName // what a restarted daemon adopts
	}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: f.pinDir}}
	err = spec.LoadAndAssign(&f.objs, opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		// The pinned maps are of another size or version: start them afresh. Until the new
		// maps are filled, reserved clients are answered by the control plane.
		removeMapPins(f.pinDir)
		err = spec.LoadAndAssign(&f.objs, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("load XDP program: %w", explainVerifier(err))
	}
	if err := f.setConfig(cfg.ServerIP, iface.HardwareAddr, cfg.Storm); err != nil {
		f.objs.Close()
		return nil, err
	}
	if err := f.SetRelays(cfg.Relays); err != nil {
		f.objs.Close()
		return nil, err
	}
	if err := f.attach(iface.Index, cfg.Mode, cfg.Replace); err != nil {
		f.objs.Close()
		return nil, err
	}
	return f, nil
}

func (f *FastPath) attach(ifindex int, mode Mode, replace bool) error {
	pin := filepath.Join(f.pinDir, "link")
	if l, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := l.Update(f.objs.NetbootdXdp); err != nil {
			l.Close()
			return fmt.Errorf("replace the pinned XDP program: %w", err)
		}
		f.link, f.adopted = l, true
		f.mode = pinnedMode(ifindex)
		return nil
	}
	// Not ours (we found no pinned link of our own): someone else's program is there.
	if id, name := foreignProgram(ifindex); id != 0 {
		if !replace {
			return fmt.Errorf("%w (id %d, %q): netbootd will not cut it off; stop its owner, or start with --xdp-replace to take over, or --xdp off", ErrForeignProgram, id, name)
		}
		if err := detachNetlink(ifindex); err != nil {
			return fmt.Errorf("take over from XDP program %d: %w", id, err)
		}
	}
	try := []Mode{mode}
	if mode == ModeAuto {
		try = []Mode{ModeNative, ModeGeneric}
	}
	var errs []error
	for _, m := range try {
		flags := link.XDPDriverMode
		if m == ModeGeneric {
			flags = link.XDPGenericMode
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: f.objs.NetbootdXdp, Interface: ifindex, Flags: flags})
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m, err))
			continue
		}
		if err := l.Pin(pin); err != nil {
			l.Close()
			return fmt.Errorf("pin XDP link: %w", err)
		}
		f.link, f.mode = l, m
		return nil
	}
	return fmt.Errorf("attach XDP: %w", errors.Join(errs...))
}

// foreignProgram reports the XDP program attached to ifindex, if any: its id and name.
func foreignProgram(ifindex int) (uint32, string) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil || l.Attrs().Xdp == nil || !l.Attrs().Xdp.Attached || l.Attrs().Xdp.ProgId == 0 {
		return 0, ""
	}
	id := l.Attrs().Xdp.ProgId
	name := ""
	if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
		if info, err := p.Info(); err == nil {
			name = info.Name
		}
		p.Close()
	}
	return id, name
}

// detachNetlink removes a netlink-attached XDP program, in whatever mode it runs. (A program
// attached through a bpf_link, like ours, cannot be removed this way: its owner must.)
func detachNetlink(ifindex int) error {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return err
	}
	var errs []error
	for _, flags := range []int{nl.XDP_FLAGS_DRV_MODE, nl.XDP_FLAGS_SKB_MODE} {
		errs = append(errs, netlink.LinkSetXdpFdWithFlags(l, -1, flags))
	}
	if id, _ := foreignProgram(ifindex); id != 0 {
		return fmt.Errorf("program %d still attached: %w", id, errors.Join(errs...))
	}
	return nil
}

// pinnedMode asks the kernel how an adopted program is attached.
func pinnedMode(ifindex int) Mode {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil || l.Attrs().Xdp == nil {
		return ModeAuto
	}
	if l.Attrs().Xdp.AttachMode == nl.XDP_ATTACHED_SKB {
		return ModeGeneric
	}
	return ModeNative
}

func (f *FastPath) setConfig(server netip.Addr, mac net.HardwareAddr, st Storm) error {
	c := netbootdFpConfig{ServerIp: addrField(server), Enabled: 1,
		DupWindowNs: uint64(st.DuplicateWindow.Nanoseconds()),
		SourceRate:  st.SourceRate, SourceBurst: max(st.SourceBurst, 1),
		StrangerBurst: max(st.StrangerBurst, 1)}
	if st.StrangerRate > 0 {
		// Each CPU has its own bucket: share the rate (and burst) among them.
		cpus := uint64(max(ebpf.MustPossibleCPU(), 1))
		c.StrangerRate = max(st.StrangerRate/cpus, 1)
		c.StrangerBurst = max(st.StrangerBurst/cpus, 1)
	}
	copy(c.Mac[:], mac)
	if err := f.objs.Config.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("fast path config: %w", err)
	}
	f.server, f.mac = server, mac
	return nil
}

// SetStorm changes the flood protection (on reload), keeping the rest of the configuration.
func (f *FastPath) SetStorm(st Storm) error { return f.setConfig(f.server, f.mac, st) }

// Mode is how the program is attached.
func (f *FastPath) Mode() Mode { return f.mode }

// Adopted reports whether a pinned program from an earlier daemon was taken over.
func (f *FastPath) Adopted() bool { return f.adopted }

// Close releases the daemon's handles; the pinned program keeps answering.
func (f *FastPath) Close() error {
	var err error
	if f.link != nil {
		err = f.link.Close()
	}
	return errors.Join(err, f.objs.Close())
}

// Detach removes the program, link and maps of iface pinned under pinRoot ("" = the default).
func Detach(pinRoot, iface string) error {
	dir := PinDir(pinRoot, iface)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no netbootd fast path pinned for %s (%s)", iface, dir)
	}
	var errs []error
	if l, err := link.LoadPinnedLink(filepath.Join(dir, "link"), nil); err == nil {
		errs = append(errs, l.Unpin(), l.Close()) // the last reference: the program detaches
	}
	removeMapPins(dir)
	errs = append(errs, os.Remove(dir))
	return errors.Join(errs...)
}

func removeMapPins(dir string) {
	for _, name := range pinnedMaps {
		_ = os.Remove(filepath.Join(dir, name))
	}
}

// ensureBPFFS checks that pinRoot is on a bpf filesystem, mounting /sys/fs/bpf when pinRoot is
// under it and nothing is mounted there. It reports whether it mounted.
func ensureBPFFS(pinRoot string) (bool, error) {
	if onBPFFS(pinRoot) {
		return false, nil
	}
	if !strings.HasPrefix(filepath.Clean(pinRoot)+"/", "/sys/fs/bpf/") {
		return false, fmt.Errorf("pin directory %s is not on a bpf filesystem (mount -t bpf bpffs DIR)", pinRoot)
	}
	if err := unix.Mount("bpffs", "/sys/fs/bpf", "bpf", 0, ""); err != nil {
		return false, fmt.Errorf("mount bpffs on /sys/fs/bpf: %w", err)
	}
	return true, nil
}

// onBPFFS reports whether the nearest existing ancestor of dir is on a bpf filesystem.
func onBPFFS(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err == nil {
			return st.Type == bpffsMagic
		}
		if d == "/" {
			return false
		}
	}
}

func explainVerifier(err error) error {
	var ve *ebpf.VerifierError
	if errors.As(err, &ve) {
		return fmt.Errorf("%w (verifier: %+v)", err, ve)
	}
	return err
}

// addrField is a as the program's __be32 fields hold it: the generated types are bpfel, so the
// address bytes are loaded little-endian to keep them in network order in memory.
func addrField(a netip.Addr) uint32 {
	b := a.As4()
	return binary.LittleEndian.Uint32(b[:])
}

func linkPinned(path string) (link.Link, error) {
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		return nil, err
	}
	return l, l.Close()
}

// LoadForTest loads the program with its maps filled, neither attached nor pinned, for
// BPF_PROG_TEST_RUN in other packages' tests (the differential test of the two reply paths).
func LoadForTest(server netip.Addr, mac net.HardwareAddr, entries []Entry, relays []Relay) (*ebpf.Program, error) {
	return loadForTest(server, mac, func(f *FastPath) error {
		return errors.Join(f.Sync(entries), f.SetRelays(relays))
	})
}

// LoadForTest6 is LoadForTest with DHCPv6 on, answered from src for entries.
func LoadForTest6(server netip.Addr, mac net.HardwareAddr, src netip.Addr, entries []Entry6) (*ebpf.Program, error) {
	return loadForTest(server, mac, func(f *FastPath) error { return f.SyncDHCP6(src, entries) })
}

// loadForTest loads the program for server and mac, then fill writes its maps.
func loadForTest(server netip.Addr, mac net.HardwareAddr, fill func(*FastPath) error) (*ebpf.Program, error) {
	f := &FastPath{}
	if err := loadNetbootdObjects(&f.objs, nil); err != nil {
		return nil, explainVerifier(err)
	}
	defer f.objs.netbootdMaps.Close() // the program keeps its maps
	err := f.setConfig(server, mac, Storm{})
	if err == nil {
		err = fill(f)
	}
	if err != nil {
		f.objs.Close()
		return nil, err
	}
	return f.objs.NetbootdXdp, nil
}
