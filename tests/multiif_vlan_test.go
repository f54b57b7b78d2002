//go:build integration && vlan

package tests

import "testing"

// TestMultiIfAttach with the third interface a real 802.1Q VLAN sub-interface (sv3.100, VLAN
// 100 on sv3; the clients tag on eth0.100). It needs a kernel with 802.1Q VLANs
// (CONFIG_VLAN_8021Q), which CI's has not: `make test-vlan` runs it, and it fails, naming that,
// on a kernel without them.
func TestMultiIfVLAN(t *testing.T) { multiIfAttach(t, true) }
