package bpf

import (
	"net/netip"
	"testing"
)

// TestEventDetail: an answer reads on the timeline as the Go path writes its own.
func TestEventDetail(t *testing.T) {
	ip := netip.MustParseAddr("10.0.0.5")
	for _, tc := range []struct {
		e    Event
		want string
	}{
		{Event{Request: 1, Reply: 2, IP: ip}, "DISCOVER → OFFER 10.0.0.5"},
		{Event{Request: 3, Reply: 5, IP: ip, PXE: true, Arch: 7}, "REQUEST → ACK 10.0.0.5, PXE boot parameters for arch 7"},
		{Event{Request: 1, Reply: 2, IP: ip, PXE: true, HTTP: true, Arch: 16}, "DISCOVER → OFFER 10.0.0.5, HTTP boot parameters for arch 16"},
	} {
		if got := tc.e.Detail(); got != tc.want {
			t.Errorf("Detail() = %q, want %q", got, tc.want)
		}
	}
}
