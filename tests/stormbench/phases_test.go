package main

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// Each step's spread is over the machines that finished it, and the last column is the step's
// duration for the machine done last, not the slowest one of each step.
func TestStormPhases(t *testing.T) {
	results := []result{
		{Start: 0, PXEDHCP: 1, TFTP: 5, TFTPSeconds: 4, IPXEDHCP: 5.5, Done: 9,
			Scripts: []file{{Seconds: 0.25}, {Seconds: 0.25}}, Kernel: &file{Seconds: 1}, Initrds: []file{{Seconds: 2}}},
		{Start: 0.5, PXEDHCP: 3.5, TFTP: 4.5, TFTPSeconds: 1, IPXEDHCP: 4.5, Done: 10,
			Scripts: []file{{Seconds: 0.5}}, Kernel: &file{Seconds: 3}, Initrds: []file{{Seconds: 1}}},
		{Start: 1, PXEDHCP: 2, Error: "tftp: stalled", Step: "tftp"}, // failed in TFTP
	}
	want := map[string]phase{
		"pxe_dhcp":     {N: 3, Min: 1, P50: 1, P99: 3, Max: 3, Last: 3},
		"tftp":         {N: 2, Min: 1, P50: 4, P99: 4, Max: 4, Last: 1},
		"ipxe_dhcp":    {N: 2, Min: 0, P50: 0.5, P99: 0.5, Max: 0.5, Last: 0},
		"http_scripts": {N: 2, Min: 0.5, P50: 0.5, P99: 0.5, Max: 0.5, Last: 0.5},
		"http_kernel":  {N: 2, Min: 1, P50: 3, P99: 3, Max: 3, Last: 3},
		"http_initrd":  {N: 2, Min: 1, P50: 2, P99: 2, Max: 2, Last: 1},
		"whole_boot":   {N: 2, Min: 9, P50: 9.5, P99: 9.5, Max: 9.5, Last: 9.5},
	}
	got := phases(results)
	if len(got) != len(want) {
		t.Fatalf("%d phases, want %d: %+v", len(got), len(want), got)
	}
	for _, p := range got {
		w, ok := want[p.Name]
		w.Name = p.Name
		if !ok || p != w {
			t.Errorf("%s: %+v, want %+v", p.Name, p, w)
		}
	}
}

// What a machine fetched passes only with the local copy's size and CRC-32C.
func TestStormExpected(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("kernel bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := expect(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.check("f", e.bytes, e.sum); err != nil {
		t.Errorf("the same file: %v", err)
	}
	h := newSum()
	h.Write([]byte("kernel bytez"))
	other := hex.EncodeToString(h.Sum(nil))
	if e.check("f", e.bytes, other) == nil || e.check("f", e.bytes-1, e.sum) == nil {
		t.Errorf("another checksum or size passed")
	}
	if none, err := expect(""); none != nil || err != nil || none.check("f", 1, "x") != nil {
		t.Errorf("no file: %v %v, want nothing checked", none, err)
	}
}
