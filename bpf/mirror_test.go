//go:build integration

package bpf

import (
	"maps"
	"testing"

	"github.com/cilium/ebpf"
)

// The mirror writes changes only, yet the map always ends equal to what was wanted; a full pass
// (the first sync, and every fullEvery-th) also removes what someone else put there.
func TestMapMirror(t *testing.T) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 64})
	if err != nil {
		t.Fatalf("create a BPF map (needs root): %v", err)
	}
	defer m.Close()
	content := func() map[uint32]uint32 {
		got := map[uint32]uint32{}
		var k, v uint32
		it := m.Iterate()
		for it.Next(&k, &v) {
			got[k] = v
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	// An entry a previous daemon left: the first (full) sync removes it.
	if err := m.Put(uint32(99), uint32(99)); err != nil {
		t.Fatal(err)
	}
	mm := mapMirror[uint32, uint32]{fullEvery: 3}
	steps := []map[uint32]uint32{
		{1: 10, 2: 20, 3: 30},
		{1: 10, 2: 21, 4: 40}, // one changed, one removed, one added
		{},
		{5: 50},
	}
	for i, want := range steps {
		if i == 2 {
			// Someone else's entry between syncs: an incremental sync does not see it, the
			// next full one (the third sync) does.
			if err := m.Put(uint32(77), uint32(77)); err != nil {
				t.Fatal(err)
			}
		}
		if err := mm.sync(m, maps.Clone(want)); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got := content(); !maps.Equal(got, want) {
			t.Fatalf("step %d: map holds %v, want %v", i, got, want)
		}
	}
}
