package bpf

import (
	"slices"
	"testing"
)

// TestCounterNames pins the counters' names, which come from enum counter in netbootd.h: they are
// the result labels of netbootd_xdp_packets_total that dashboards and alerts select on, so renaming
// a C constant must be a decision, not a side effect.
func TestCounterNames(t *testing.T) {
	want := []string{
		"received", "offer", "ack", "pass_unknown_mac", "pass_netboot", "pass_relay", "pass_type",
		"pass_not_ours", "pass_requested_option", "pass_size", "pass_ip_options", "malformed", "events_lost", "pxe",
		"drop_duplicate", "drop_source_rate", "drop_stranger_rate", "drop_untrusted_relay", "drop_fragment",
		"pass_options", "pass_class",
		"received6", "advertise6", "reply6", "pass_unknown_mac6", "pass_type6",
		"pass_relay6", "pass_netboot6", "pass_not_ours6", "pass_options6", "pass_size6",
		"malformed6", "drop_spoofed6",
	}
	if !slices.Equal(counterNames, want) {
		t.Errorf("counter names\n got %q\nwant %q", counterNames, want)
	}
}
