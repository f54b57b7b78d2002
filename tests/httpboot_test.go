//go:build integration

package tests

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	t.Parallel() // its own namespaces and VMs: the VM tests boot side by side (make integration's budget)
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
		expectEvents(t, v.mac, m, []event{
			{v.offer.source, "dhcp", v.offer.detail},
			{"http", "", "GET /ipxe/ipxe.efi: 200"},
			{"dhcp", "dhcp", "boot.ipxe"},
			{"http", "kernel", ""},
			{"http", "initrd", ""},
			{"callback", "booted", ""},
		})
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

// httpsConfig is bootConfig's rack with the boot routes over HTTPS too (certificate and key
// from files) and the firmware's HTTP boot URL on it. The iPXE script and the payload stay on
// plain HTTP: Debian's ipxe.efi (2019) is built without HTTPS.
const httpsConfig = `
interface: {mode: authoritative, ipv6_ra: true}
http:
  assets: %[1]s
  tls: {listen: "10.10.0.1:8443", cert: %[2]s/tls.crt, key: %[2]s/tls.key}
boot: {http_boot: "https://10.10.0.1:8443/ipxe/ipxe.efi"}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
    options: {router: 10.10.0.1}
reservations:
  - {mac: "52:54:00:00:10:02", ip: 10.10.0.12, hostname: uefi01}
profiles:
  - name: payload
    kernel: vmlinuz
    initrds: [initrd.gz]
    args: "console=ttyS0 panic=-1 netbootd.booted={{.BootedURL}}"
groups:
  - {name: default, profile: payload}
`

// testPKI makes, with openssl, an RSA CA and a server certificate for 10.10.0.1 signed by it
// (RSA: Debian 12's OVMF verifies no elliptic-curve signatures). It returns the directory
// holding ca.crt, ca.der, tls.crt and tls.key.
func testPKI(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ext := filepath.Join(dir, "server.ext")
	if err := os.WriteFile(ext, []byte("subjectAltName=IP:10.10.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
			"-subj", "/CN=netbootd test CA", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"},
		{"x509", "-in", "ca.crt", "-outform", "DER", "-out", "ca.der"},
		{"req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr", "-subj", "/CN=10.10.0.1"},
		{"x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "tls.crt", "-days", "2", "-extfile", ext},
	} {
		cmd := exec.Command("openssl", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

// caList writes the CA of the testPKI directory dir as an EFI signature list file for OVMF.
func caList(t *testing.T, dir string) string {
	t.Helper()
	der, err := os.ReadFile(filepath.Join(dir, "ca.der"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cacerts.esl")
	if err := os.WriteFile(path, efiSignatureList(der), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// efiSignatureList is the CA certificate (DER) as one EFI_SIGNATURE_LIST of type
// EFI_CERT_X509_GUID (UEFI 2.10 §32.4.1): the format OVMF takes in the fw_cfg file
// etc/edk2/https/cacerts and stores as its TlsCaCertificate variable
// (OvmfPkg/Library/TlsAuthConfigLib, OvmfPkg/README "HTTPS Boot").
func efiSignatureList(der []byte) []byte {
	certX509 := []byte{0xa1, 0x59, 0xc0, 0xa5, 0xe4, 0x94, 0xa7, 0x4a, 0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72}
	owner := []byte("netbootd-test-ca") // SignatureOwner: any GUID, 16 bytes
	sigSize := 16 + len(der)
	b := append([]byte(nil), certX509...)
	b = binary.LittleEndian.AppendUint32(b, uint32(28+sigSize)) // SignatureListSize
	b = binary.LittleEndian.AppendUint32(b, 0)                  // SignatureHeaderSize
	b = binary.LittleEndian.AppendUint32(b, uint32(sigSize))    // SignatureSize
	b = append(b, owner...)
	return append(b, der...)
}

// HTTPS on the boot listener: curl trusting the CA gets the chain script over HTTPS, curl
// without it is refused by its certificate check, and plain HTTP still answers. Then real
// firmware: OVMF, given the CA through fw_cfg (no NVRAM tool needed), HTTP boots from an
// https:// URL, and the VM boots to "booted" with no TFTP; the same OVMF trusting another CA
// refuses the server and gets nothing.
func TestHTTPBootHTTPS(t *testing.T) {
	t.Parallel() // its own namespaces and VMs: the VM tests boot side by side (make integration's budget)
	assets := bootAssets(t)
	pki := testPKI(t)
	r := newXDPRack(t)
	pins := pinDir(t, r)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", fmt.Sprintf(httpsConfig, assets, pki), "", "--xdp", "generic", "--pin-dir", pins)

	c := r.client(t, "02:00:00:00:77:01")
	c.Run(t, "ip", "addr", "add", "10.10.0.77/24", "dev", "eth0")
	c.Run(t, "ip", "link", "set", "eth0", "up")
	out, err := c.Exec("curl", "-sS", "--fail", "--retry", "5", "--retry-connrefused", "--cacert", filepath.Join(pki, "ca.crt"), "https://10.10.0.1:8443/ipxe/boot.ipxe")
	if err != nil || !strings.HasPrefix(out, "#!ipxe") {
		t.Fatalf("curl --cacert over HTTPS: %v\n%s", err, out)
	}
	if out, err := c.Exec("curl", "-sS", "--fail", "https://10.10.0.1:8443/ipxe/boot.ipxe"); err == nil || !strings.Contains(out, "certificate") {
		t.Errorf("curl not trusting the CA: err %v, want a certificate error:\n%s", err, out)
	}
	if out, err := c.Exec("curl", "-sS", "--fail", "http://10.10.0.1:8080/ipxe/boot.ipxe"); err != nil || !strings.HasPrefix(out, "#!ipxe") {
		t.Errorf("plain HTTP next to HTTPS: %v\n%s", err, out)
	}

	cacerts, otherCA := caList(t, pki), caList(t, testPKI(t))
	const mac, untrusting = "52:54:00:00:10:02", "52:54:00:00:10:97"
	vm := qemu.Start(t, r.lan, qemu.Options{Name: "https01", Bridge: "br0", MAC: mac, Firmware: qemu.UEFI, NoRouterAdvertisements: true,
		ExtraArgs: append([]string{"-fw_cfg", "name=etc/edk2/https/cacerts,file=" + cacerts}, httpBootArgs...)})
	// The same firmware trusting another CA must refuse the server: EDK2 verifies the
	// certificate. The payload starting would mean it booted anyway.
	bad := qemu.Start(t, r.lan, qemu.Options{Name: "https02", Bridge: "br0", MAC: untrusting, Firmware: qemu.UEFI,
		NoRouterAdvertisements: true, FailOn: []string{qemu.Marker + " up"},
		ExtraArgs: append([]string{"-fw_cfg", "name=etc/edk2/https/cacerts,file=" + otherCA}, httpBootArgs...)})
	var badErr error
	var badLine string
	done := make(chan struct{})
	go func() {
		defer close(done)
		badLine, badErr = bad.WaitFor(`BdsDxe: failed to load Boot\S+ "UEFI HTTPv4`, 6*time.Minute)
	}()
	_, err = vm.WaitFor(qemu.Marker+" done", 6*time.Minute)
	t.Logf("https01: QEMU start to payload done in %v", time.Since(vm.Started()).Round(time.Second))
	<-done
	if badErr != nil {
		t.Errorf("OVMF trusting another CA: %v", badErr)
	} else {
		t.Logf("OVMF trusting another CA: %s", badLine)
		var m machines.Machine
		d.getJSON("/api/v1/machines/"+untrusting, &m)
		if hasEvent(m, "http", "", "/ipxe/ipxe.efi: 200") {
			t.Errorf("OVMF trusting another CA got ipxe.efi:\n%s", describe(m))
		}
		if !hasEvent(m, "dhcp", "dhcp", "https://10.10.0.1:8443/ipxe/ipxe.efi") {
			t.Errorf("OVMF trusting another CA was not offered the HTTPS URL:\n%s", describe(m))
		}
		// It broke off the handshake (EDK2 resets the connection, no alert) and said so.
		if !strings.Contains(d.logs(), "TLS handshake error from "+m.IP+":") {
			t.Errorf("netbootd logged no broken handshake from %s", m.IP)
		}
		if !strings.Contains(bad.Serial(), "Error: Could not retrieve NBP file size from HTTP server.") {
			t.Errorf("OVMF trusting another CA did not fail at the HTTPS download")
		}
	}
	if err != nil {
		t.Fatalf("HTTPS boot: %v", err)
	}
	var m machines.Machine
	d.getJSON("/api/v1/machines/"+mac, &m)
	t.Logf("timeline:\n%s", describe(m))
	expectEvents(t, "the machine's", m, []event{
		{"xdp", "dhcp", "HTTP boot parameters for arch 16"},
		{"http", "", "GET /ipxe/ipxe.efi: 200 over TLS"},
		{"http", "kernel", ""},
		{"callback", "booted", ""},
	})
	for _, e := range m.Events {
		if strings.Contains(e.Detail, "/ipxe/ipxe.efi") && !strings.HasSuffix(e.Detail, "over TLS") {
			t.Errorf("the firmware fetched ipxe.efi over plain HTTP: %s", e.Detail)
		}
	}
	if n := d.metric("netbootd_tftp_transfers_started_total"); n != 0 {
		t.Errorf("%v TFTP transfers started, want none", n)
	}
	if !strings.Contains(vm.Serial(), "URI: https://10.10.0.1:8443/ipxe/ipxe.efi") {
		t.Errorf("the firmware did not HTTP boot from the https:// URI")
	}
}
