//go:build integration

package tests

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tests/qemu"
)

// httpBootArgs make Debian's OVMF (edk2 2022.11) skip PXE: its PcdIPv4PXESupport and
// PcdIPv6PXESupport come from these fw_cfg files (OvmfPkg/Library/PxeBcPcdProducerLib), so
// the NIC's boot options are UEFI HTTPv4 and HTTPv6 only, and HTTPv4 comes first.
var httpBootArgs = []string{
	"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=n",
	"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n",
}

// Real UEFI HTTP boot: OVMF with PXE turned off asks DHCP as an HTTPClient (arch 16), gets a
// URL, loads ipxe.efi over HTTP, and iPXE boots the payload to "booted". A reserved machine
// (answered by the XDP program) and a stranger (a pool address from the Go path) do it at
// once; neither touches TFTP.
func TestHTTPBootOVMF(t *testing.T) {
	assets := bootAssets(t)
	r := newXDPRack(t)
	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(bootConfig, assets, "one"), "", "--xdp", "generic", "--pin-dir", pins)

	vms := []struct {
		name, mac, ip string
		offer         struct{ source, detail string } // who answered the firmware's DHCP
	}{
		{"http01", "52:54:00:00:10:02", "10.10.0.12", // reserved (uefi01): the XDP program
			struct{ source, detail string }{"xdp", "ACK 10.10.0.12, HTTP boot parameters for arch 16"}},
		{"httpstr", "52:54:00:00:10:98", "", // a stranger: the Go path, from the pool
			struct{ source, detail string }{"dhcp", "boot file http://10.10.0.1:8080/ipxe/ipxe.efi"}},
	}
	var wg sync.WaitGroup
	serial := make([]string, len(vms))
	errs := make([]error, len(vms))
	took := make([]time.Duration, len(vms))
	for i, v := range vms {
		vm := qemu.Start(t, r.lan, qemu.Options{Name: v.name, Bridge: "br0", MAC: v.mac, Firmware: qemu.UEFI,
			NoRouterAdvertisements: true, ExtraArgs: httpBootArgs})
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = vm.WaitFor(qemu.Marker+" done", 6*time.Minute)
			took[i] = time.Since(vm.Started())
			serial[i] = vm.Serial()
		}()
	}
	wg.Wait()
	for i, v := range vms {
		if errs[i] != nil {
			t.Errorf("%s did not boot: %v", v.name, errs[i])
			continue
		}
		t.Logf("%s: QEMU start to payload done in %v", v.name, took[i].Round(time.Second))
		if !strings.Contains(serial[i], qemu.Marker+" booted-callback ok") {
			t.Errorf("%s: the booted callback failed", v.name)
		}
		// EDK2's HttpBootDxe announces itself (HttpBootImpl.c); its PXE would say ">>Start PXE".
		if !strings.Contains(serial[i], ">>Start HTTP Boot over IPv4") || strings.Contains(serial[i], ">>Start PXE") {
			t.Errorf("%s: the firmware did not HTTP boot alone", v.name)
		}
		if v.ip != "" && !strings.Contains(serial[i], qemu.Marker+" dhcp ip="+v.ip) {
			t.Errorf("%s: payload did not get its reservation %s", v.name, v.ip)
		}
	}

	for _, v := range vms {
		var m machines.Machine
		d.getJSON("/api/v1/machines/"+v.mac, &m)
		t.Logf("timeline:\n%s", describe(m))
		for _, want := range []struct{ source, phase, detail string }{
			{v.offer.source, "dhcp", v.offer.detail},
			{"http", "", "GET /ipxe/ipxe.efi: 200"},
			{"dhcp", "dhcp", "boot.ipxe"},
			{"http", "kernel", ""},
			{"http", "initrd", ""},
			{"callback", "booted", ""},
		} {
			if !hasEventAny(m, want.source, want.phase, want.detail) {
				t.Errorf("%s timeline lacks %s/%s %q:\n%s", v.mac, want.source, want.phase, want.detail, describe(m))
			}
		}
		for _, e := range m.Events {
			if e.Source == "tftp" {
				t.Errorf("%s used TFTP: %+v", v.mac, e)
			}
		}
		if m.Phase != "booted" {
			t.Errorf("%s not booted:\n%s", v.mac, describe(m))
		}
	}
	if n := d.metric("netbootd_tftp_transfers_started_total"); n != 0 {
		t.Errorf("%v TFTP transfers started, want none", n)
	}
	if n := d.metric("netbootd_xdp_packets_total", `result="pxe"`); n < 2 {
		t.Errorf("XDP answered %v requests with boot parameters, want the reserved VM's DISCOVER and REQUEST", n)
	}
}

// hasEventAny is hasEvent where an empty phase matches any phase.
func hasEventAny(m machines.Machine, source, phase, detail string) bool {
	for _, e := range m.Events {
		if e.Source == source && (phase == "" || e.Phase == phase) && strings.Contains(e.Detail, detail) {
			return true
		}
	}
	return false
}
