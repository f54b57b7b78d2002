package bpf

import (
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
)

// AreaMax is the largest options area the program copies (BOOTP 240 + 308 = 548 bytes: every
// client accepts a reply of that size without option 57).
const AreaMax = len(netbootdResVal{}.Area)

// Entry is one reserved MAC as the program answers it.
type Entry struct {
	MAC    net.HardwareAddr
	IP     netip.Addr
	Subnet netip.Prefix // the reservation's subnet: relayed requests are answered only from it
	Area   []byte       // option 53 (type byte at [2], patched per reply), the options, END, padding
	// OnRequest are option codes the control plane adds when option 55 asks for them: the
	// program passes such requests up rather than answer without them.
	OnRequest []uint8
	// Boot is what firmware PXE (vendor class PXEClient) of each architecture is told, and UEFI
	// HTTP boot (HTTPClient) with Arch | HTTPArch; an architecture not listed is passed to the
	// control plane. Arch PlainArch is what a plain DHCP client is told when a client class
	// gives it a boot file.
	Boot []Boot
	// Flags (FlagClass…) send requests up that a client class could match on something the
	// program does not evaluate.
	Flags uint16
}

// Flags of an Entry, as enum res_flags in netbootd.h.
const (
	FlagClassVendor   = 1 << 0 // requests with option 60 go up (C_PASS_CLASS)
	FlagClassArch     = 1 << 1 // plain requests (not PXEClient) with option 93 go up
	FlagClassClientID = 1 << 2 // requests with option 61 go up
	// flagNoPlainBoot is set by Sync, not by callers: Boot has no PlainArch entry, so the
	// program need not look one up for a plain client (F_NO_PLAIN_BOOT).
	flagNoPlainBoot = 1 << 3
)

// PlainArch is the Boot.Arch of a plain DHCP client's reply with boot parameters: no
// architecture (option 93) has this value.
const PlainArch = 0xffff

// HTTPArch is set in Boot.Arch for a UEFI HTTP boot client's answer (ARCH_HTTP in netbootd.h):
// no architecture on the wire has this bit, and the program passes up requests that do.
const HTTPArch = 0x8000

// Boot is one architecture's pre-rendered PXE answer for one reservation.
type Boot struct {
	Arch       uint16 // option 93 (| HTTPArch for HTTP boot); 0 also stands for "no option 93" (BIOS)
	NextServer netip.Addr
	File       string // the BOOTP file field (under 128 bytes); longer names go in option 67 only
	Area       []byte // as Entry.Area, with the boot options (60, 43, 66, 67) included
}

func (b Boot) value(mac net.HardwareAddr) (netbootdBootVal, error) {
	var v netbootdBootVal
	if len(b.Area) < 4 || len(b.Area) > AreaMax || b.Area[0] != 53 || b.Area[1] != 1 {
		return v, fmt.Errorf("reservation %s arch %d: options area of %d bytes does not fit the fast path", mac, b.Arch, len(b.Area))
	}
	if len(b.File) >= len(v.File) || !b.NextServer.Is4() {
		return v, fmt.Errorf("reservation %s arch %d: boot file over 127 bytes or no IPv4 next-server", mac, b.Arch)
	}
	end, ok := areaEnd(b.Area)
	if !ok {
		return v, fmt.Errorf("reservation %s arch %d: options area without END", mac, b.Arch)
	}
	v.Siaddr = addrField(b.NextServer)
	v.AreaLen = uint16(len(b.Area))
	v.AreaEnd = end
	copy(v.Area[:], b.Area)
	copy(v.File[:], b.File)
	v.SumOffer = areaSum(b.Area, 2)
	v.SumAck = areaSum(b.Area, 5)
	return v, nil
}

func (e Entry) value() (netbootdResVal, error) {
	var v netbootdResVal
	if len(e.Area) < 4 || len(e.Area) > AreaMax || e.Area[0] != 53 || e.Area[1] != 1 {
		return v, fmt.Errorf("reservation %s: options area of %d bytes does not fit the fast path", e.MAC, len(e.Area))
	}
	if !e.IP.Is4() || len(e.MAC) != 6 {
		return v, fmt.Errorf("reservation %s: bad MAC or address", e.MAC)
	}
	if !e.Subnet.IsValid() || !e.Subnet.Contains(e.IP) {
		return v, fmt.Errorf("reservation %s: %s is not in subnet %s", e.MAC, e.IP, e.Subnet)
	}
	end, ok := areaEnd(e.Area)
	if !ok {
		return v, fmt.Errorf("reservation %s: options area without END", e.MAC)
	}
	v.AreaEnd = end
	v.Yiaddr = addrField(e.IP)
	v.Net = addrField(e.Subnet.Masked().Addr())
	v.Mask = addrField(netip.AddrFrom4([4]byte(net.CIDRMask(e.Subnet.Bits(), 32))))
	v.AreaLen = uint16(len(e.Area))
	v.Flags = e.Flags | flagNoPlainBoot
	for _, b := range e.Boot {
		if b.Arch == PlainArch {
			v.Flags &^= flagNoPlainBoot
		}
	}
	copy(v.Area[:], e.Area)
	v.SumOffer = areaSum(e.Area, 2)
	v.SumAck = areaSum(e.Area, 5)
	for _, c := range e.OnRequest {
		v.PuntPrl[c>>3] |= 1 << (c & 7)
	}
	return v, nil
}

// areaEnd is the offset of END in area, where the program inserts an echoed option 61; only
// padding may follow it (the program's checksum counts on zeros there).
func areaEnd(area []byte) (uint16, bool) {
	i := 0
	for i < len(area) && area[i] != 255 {
		if area[i] == 0 {
			i++
			continue
		}
		if i+1 >= len(area) {
			return 0, false
		}
		i += 2 + int(area[i+1])
	}
	if i >= len(area) {
		return 0, false
	}
	for _, b := range area[i+1:] {
		if b != 0 {
			return 0, false
		}
	}
	return uint16(i), true
}

// areaSum is the ones-complement sum of the area with message type t, summed as the kernel's
// csum_diff sums memory on this little-endian machine, so the program can add it unchanged.
func areaSum(area []byte, t byte) uint32 {
	withType := append([]byte(nil), area...)
	if len(withType) > 2 {
		withType[2] = t
	}
	// Ones-complement sums do not depend on byte order (RFC 1071): swapping the big-endian sum
	// gives the little-endian one.
	return uint32(bits.ReverseBytes16(OnesFold(OnesSum(0, withType))))
}

func key(mac net.HardwareAddr) netbootdResKey {
	var k netbootdResKey
	copy(k.Mac[:], mac)
	return k
}

// Sync makes the maps equal to entries: new and changed first, then removals, so a
// reservation present before and after a reload is never missing in between.
func (f *FastPath) Sync(entries []Entry) error {
	res := make(map[netbootdResKey]netbootdResVal, len(entries))
	boots := make(map[netbootdBootKey]netbootdBootVal)
	var errs []error
	for _, e := range entries {
		v, err := e.value()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res[key(e.MAC)] = v
		for _, b := range e.Boot {
			bv, err := b.value(e.MAC)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			k := netbootdBootKey{Arch: b.Arch}
			copy(k.Mac[:], e.MAC)
			boots[k] = bv
		}
	}
	// Boot parameters before reservations: a new reservation's PXE requests find them at once.
	if err := f.bootMirror.sync(f.objs.BootParams, boots); err != nil {
		return fmt.Errorf("boot parameters map: %w", err)
	}
	if err := f.resMirror.sync(f.objs.Reservations, res); err != nil {
		return fmt.Errorf("reservations map: %w", err)
	}
	return errors.Join(errs...)
}

// SetKnown makes the set of MACs with a dynamic lease equal to macs: the program never
// rate-limits them as strangers.
func (f *FastPath) SetKnown(macs []net.HardwareAddr) error {
	want := make(map[netbootdResKey]uint8, len(macs))
	for _, m := range macs {
		if len(m) == 6 {
			want[key(m)] = 1
		}
	}
	if err := f.knownMirror.sync(f.objs.Known, want); err != nil {
		return fmt.Errorf("known MACs map: %w", err)
	}
	return nil
}

// mapMirror keeps a BPF map equal to a wanted set and remembers what it last wrote, so a sync
// writes only what changed: one changed reservation among 10,000 is one system call, not
// 10,000 (about a second on a virtual machine). The first sync, and every fullEvery-th after
// (if set), also reads the map back and fixes whatever differs: entries an earlier daemon
// pinned, an LRU map's evictions.
type mapMirror[K comparable, V comparable] struct {
	mu        sync.Mutex
	last      map[K]V // what the map holds; nil: not known, reconcile in full
	fullEvery int
	syncs     int
}

// sync makes m hold want, new and changed entries first, then removals. want must not change
// afterwards: it becomes the mirror's record of the map.
func (mm *mapMirror[K, V]) sync(m *ebpf.Map, want map[K]V) error {
	mm.mu.Lock()
	defer mm.mu.Unlock()
	mm.syncs++
	last := mm.last
	mm.last = nil // until this sync succeeds, the map's content is not known
	if last == nil || mm.fullEvery > 0 && mm.syncs%mm.fullEvery == 0 {
		if err := mirror(m, want); err != nil {
			return err
		}
		mm.last = want
		return nil
	}
	for k, v := range want {
		if old, ok := last[k]; ok && old == v {
			continue
		}
		if err := m.Put(&k, &v); err != nil {
			return err
		}
	}
	for k := range last {
		if _, ok := want[k]; ok {
			continue
		}
		if err := m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	mm.last = want
	return nil
}

// mirror puts every entry of want into m, then deletes the keys of m not in want.
func mirror[K comparable, V any](m *ebpf.Map, want map[K]V) error {
	for k, v := range want {
		if err := m.Put(&k, &v); err != nil {
			return err
		}
	}
	var stale []K
	var k K
	var v V
	it := m.Iterate()
	for it.Next(&k, &v) {
		if _, ok := want[k]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range stale {
		if err := m.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}
