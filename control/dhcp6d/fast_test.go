package dhcp6d

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/netbootd/netbootd/bpf"
)

// FastEntries renders a plain reply and one per firmware variant for each reservation with an
// ip6, none for one without; HTTP boot replies echo the client's enterprise number where the
// program writes it, and every head starts with this server's identifier.
func TestFastEntries(t *testing.T) {
	h, _ := testHandler(t, strings.Replace(testConf, "reservations:\n", "reservations:\n  - {mac: \"02:00:00:00:00:03\", ip: 10.0.0.6}\n", 1))
	entries := h.FastEntries()
	if len(entries) != 1 || entries[0].MAC.String() != reserved.String() {
		t.Fatalf("entries for %v, want only %s (the reservation with an ip6)", entries, reserved)
	}
	sid := append([]byte{0, 2, 0, 10}, h.serverID.ToBytes()...)
	arches := map[uint16]bool{}
	for _, r := range entries[0].Replies {
		arches[r.Arch] = true
		if !bytes.HasPrefix(r.Head, sid) {
			t.Errorf("arch %#x: head %x does not start with the server identifier %x", r.Arch, r.Head, sid)
		}
		if len(r.IA) != bpf.IA6Len || !bytes.Contains(r.IA, reservedIP6()) {
			t.Errorf("arch %#x: IA_NA %x without fd00:10::5", r.Arch, r.IA)
		}
		http := r.Arch != bpf.PlainArch && r.Arch&bpf.HTTPArch != 0
		if http != (r.VendorOff >= 0) {
			t.Errorf("arch %#x: vendor class echo at %d", r.Arch, r.VendorOff)
		}
		if http && binary.BigEndian.Uint32(r.Tail[r.VendorOff:]) != fastEnterprise {
			t.Errorf("arch %#x: no enterprise number at %d of %x", r.Arch, r.VendorOff, r.Tail)
		}
		if plain := r.Arch == bpf.PlainArch; plain != (len(r.Tail) == 0) {
			t.Errorf("arch %#x: tail %q (boot file URL for firmware only)", r.Arch, r.Tail)
		}
	}
	for _, a := range []uint16{bpf.PlainArch, 7, 11, 16 | bpf.HTTPArch, 19 | bpf.HTTPArch} {
		if !arches[a] {
			t.Errorf("no reply for arch %#x (have %v)", a, arches)
		}
	}
}

func reservedIP6() []byte { return []byte{0xfd, 0, 0, 0x10, 12: 0, 13: 0, 14: 0, 15: 5} }
