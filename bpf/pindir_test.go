package bpf

import "testing"

func TestMultiIfPinDir(t *testing.T) {
	for _, tc := range []struct{ root, iface, want string }{
		{"", "eth0", DefaultPinRoot + "/eth0"},
		{"/run/x", "eth1.100", "/run/x/eth1:100"}, // bpffs refuses '.'
		{"/run/x", "eth1_100", "/run/x/eth1_100"}, // another interface, another directory
	} {
		if got := PinDir(tc.root, tc.iface); got != tc.want {
			t.Errorf("PinDir(%q, %q) = %q, want %q", tc.root, tc.iface, got, tc.want)
		}
	}
}
