package profile

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/netbootd/netbootd/control/config"
)

const base = "http://10.10.0.1:8080"

func load(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyInterface(netip.MustParseAddr("10.10.0.1"), netip.MustParsePrefix("10.10.0.0/24"))
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func mac(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// resolver builds a resolver from the configuration yaml, with base as its base URL.
func resolver(t *testing.T, yaml string) *Resolver {
	t.Helper()
	r, err := New(Config{Conf: load(t, yaml), BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rendered is what render (Match.Script, Match.GRUB, Match.PXELinux) makes of the machine f
// resolves to; no match or a render error fails the test.
func rendered(t *testing.T, r *Resolver, f Facts, render func(Match) (string, error)) string {
	t.Helper()
	m, ok := r.Resolve(f)
	if !ok {
		t.Fatal(m.Reason)
	}
	got, err := render(m)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// checkConfigName checks a loader's config-name parser on each name: the leaf it returns, ""
// where the name is not that loader's config.
func checkConfigName(t *testing.T, fn string, parse func(string) (string, bool), want map[string]string) {
	t.Helper()
	for name, leaf := range want {
		got, ok := parse(name)
		if got != leaf || ok != (leaf != "") {
			t.Errorf("%s(%q) = %q, %v; want %q", fn, name, got, ok, leaf)
		}
	}
}

// checkAsks checks for each leaf whether a loader's rule counts it as one of the names the
// machine 52:54:00:00:00:01 at 10.10.0.11 asks for.
func checkAsks(t *testing.T, fn string, asks func(string, net.HardwareAddr, netip.Addr) bool, want map[string]bool) {
	t.Helper()
	m, ip := mac("52:54:00:00:00:01"), netip.MustParseAddr("10.10.0.11")
	for leaf, w := range want {
		if got := asks(leaf, m, ip); got != w {
			t.Errorf("%s(%q) = %v, want %v", fn, leaf, got, w)
		}
	}
}

const selection = `
interface: {mode: authoritative}
subnets: [{cidr: 10.10.0.0/24, pools: ["10.10.0.100-10.10.0.199"]}]
reservations:
  - {mac: "52:54:00:00:00:01", ip: 10.10.0.11, hostname: node01, labels: {role: worker, rack: r12}}
  - {mac: "52:54:00:00:00:02", ip: 10.10.0.12, hostname: node02, profile: rescue, labels: {role: worker}}
  - {mac: "52:54:00:00:00:03", ip: 10.10.0.13, hostname: db01, labels: {role: db}}
profiles:
  - {name: p-workers, kernel: k}
  - {name: p-uefi, kernel: k}
  - {name: p-rack, kernel: k}
  - {name: p-arch, kernel: k}
  - {name: p-platform, kernel: k}
  - {name: p-uuid, kernel: k}
  - {name: p-mac, kernel: k}
  - {name: p-host, kernel: k}
  - {name: p-default, kernel: k}
  - {name: rescue, kernel: k}
groups:
  - {name: workers, profile: p-workers, selector: {labels: {role: worker}}}
  - {name: uefi, profile: p-uefi, selector: {platform: efi, arch: x86_64}}
  - {name: rack, profile: p-rack, selector: {labels: {role: worker, rack: r12}}}
  - {name: arch, profile: p-arch, selector: {arch: arm64}}
  - {name: platform, profile: p-platform, selector: {platform: pcbios}}
  - {name: uuid, profile: p-uuid, selector: {uuid: 4C4C4544-0042-4B10-8052-B4C04F4B4E31, arch: i386, platform: efi}}
  - {name: mac, profile: p-mac, selector: {mac: "52:54:00:00:00:09", arch: i386}}
  - {name: host, profile: p-host, selector: {hostname: db01}}
  - {name: default, profile: p-default}
`

func TestResolveSelection(t *testing.T) {
	r := resolver(t, selection)
	tests := []struct {
		name        string
		facts       Facts
		profile     string
		reasonParts []string
	}{
		{"labels", Facts{MAC: mac("52:54:00:00:00:03"), Arch: "x86_64", Platform: "pcbios", Hostname: "ignored"},
			// host (1 field) and platform (1 field) tie: host comes later in the file, platform wins.
			"p-platform", []string{`group "platform" (platform pcbios; 1 selector field) over 2 other matching groups`, `tied with group "host"`}},
		{"more specific labels win", Facts{MAC: mac("52:54:00:00:00:01"), Arch: "x86_64", Platform: "pcbios"},
			"p-rack", []string{`group "rack" (labels rack=r12,role=worker; 2 selector fields) over 3 other matching groups`}},
		{"two fields beat one", Facts{MAC: mac("52:54:00:00:00:01"), Arch: "x86_64", Platform: "efi"},
			"p-uefi", []string{`group "uefi" (arch x86_64, platform efi; 2 selector fields)`, `tied with group "rack"`}},
		{"tie goes to the earlier group", Facts{MAC: mac("52:54:00:00:00:07"), Arch: "arm64", Platform: "pcbios"},
			"p-arch", []string{`group "arch"`, `tied with group "platform": the first in the file wins`}},
		{"reservation names profile", Facts{MAC: mac("52:54:00:00:00:02"), Arch: "x86_64", Platform: "efi"},
			"rescue", []string{`reservation 52:54:00:00:00:02 names profile "rescue"`}},
		{"uuid case-insensitive", Facts{MAC: mac("52:54:00:00:00:08"), UUID: "4c4c4544-0042-4b10-8052-b4c04f4b4e31", Arch: "i386", Platform: "efi"},
			"p-uuid", []string{`group "uuid" (uuid 4C4C4544-0042-4B10-8052-B4C04F4B4E31, arch i386, platform efi; 3 selector fields)`}},
		{"mac selector", Facts{MAC: mac("52-54-00-00-00-09"), Arch: "i386"},
			"p-mac", []string{`group "mac"`}},
		{"reservation hostname overrides iPXE's", Facts{MAC: mac("52:54:00:00:00:03"), Hostname: "other"},
			"p-host", []string{`group "host" (hostname db01; 1 selector field) over 1 other matching group`}},
		{"iPXE hostname without reservation", Facts{MAC: mac("52:54:00:00:00:0a"), Hostname: "db01"},
			"p-host", []string{`group "host"`}},
		{"labels need a reservation", Facts{MAC: mac("52:54:00:00:00:0b")},
			"p-default", []string{`group "default" (empty selector: every machine), the only matching group`}},
		{"no mac", Facts{}, "p-default", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := r.Resolve(tt.facts)
			if !ok {
				t.Fatalf("no match: %s", m.Reason)
			}
			if m.Profile.Name != tt.profile {
				t.Errorf("profile = %q (%s), want %q", m.Profile.Name, m.Reason, tt.profile)
			}
			for _, p := range tt.reasonParts {
				if !strings.Contains(m.Reason, p) {
					t.Errorf("reason %q lacks %q", m.Reason, p)
				}
			}
		})
	}
}

func TestResolveNoMatch(t *testing.T) {
	tests := []struct {
		name   string
		yaml   string
		reason string
	}{
		{"no default group", `
interface: {mode: proxy}
profiles: [{name: w, kernel: k}]
groups: [{name: arm, profile: w, selector: {arch: arm64}}]
`, "no group matches and no default group: mac 52:54:00:00:00:01, arch x86_64, platform efi, no reservation"},
		{"no groups", `
interface: {mode: proxy}
profiles: [{name: w, kernel: k}]
`, "no group matches and no default group: mac 52:54:00:00:00:01, arch x86_64, platform efi, no reservation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resolver(t, tt.yaml)
			m, ok := r.Resolve(Facts{MAC: mac("52:54:00:00:00:01"), Arch: "x86_64", Platform: "efi"})
			if ok {
				t.Fatalf("matched %q", m.Profile.Name)
			}
			if m.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", m.Reason, tt.reason)
			}
			if _, err := m.Script(); err == nil {
				t.Error("Script of no match: no error")
			}
		})
	}
	var nilR *Resolver
	if m, ok := nilR.Resolve(Facts{}); ok || m.Reason == "" {
		t.Errorf("nil resolver: %v %q", ok, m.Reason)
	}
}

const rendering = `
interface: {mode: authoritative}
subnets: [{cidr: 10.10.0.0/24, pools: ["10.10.0.100-10.10.0.199"]}]
reservations:
  - {mac: "52:54:00:00:00:01", ip: 10.10.0.11, hostname: node01, profile: every, labels: {role: worker, rack: r12}}
  - {mac: "52:54:00:00:00:02", ip: 10.10.0.12, hostname: node02, profile: urls}
  - {mac: "52:54:00:00:00:03", ip: 10.10.0.13, profile: script}
  - {mac: "52:54:00:00:00:04", ip: 10.10.0.14, profile: script-sig}
  - {mac: "52:54:00:00:00:05", ip: 10.10.0.15, profile: every, labels: {role: db}}
profiles:
  - name: every
    kernel: debian/vmlinuz
    initrds: [debian/initrd.gz, extra/initrd.gz, "http://mirror.example/fw/initrd.gz?v=2", "my firmware.cpio"]
    args: |
      mac={{.MAC}} dash={{.MACDash}} ip={{.IP}} host={{.Hostname}} uuid={{.UUID}}
      arch={{.Arch}} platform={{.Platform}} serial={{.Serial}} rack={{.Labels.rack}} profile={{.Profile}}
      server={{.ServerIP}} base={{.BaseURL}} assets={{.AssetsURL}} ds=nocloud-net;s={{.ConfigURL}}/ booted={{.BootedURL}} {{upper .Arch}}
    user_data: |
      #cloud-config
      hostname: {{.Hostname}}
    meta_data: "instance-id: {{.MAC}}\n"
  - name: urls
    kernel: https://mirror.example/debian/linux
    initrds: [https://mirror.example/debian/initrd.gz]
    ignition: '{"ignition": {"version": "3.4.0"}, "host": {{quote .Hostname}}}'
  - name: script
    script: |
      echo {{.MAC}} boots from disk
      exit
  - name: script-sig
    script: |

      #!ipxe
      sanboot --no-describe --drive 0x80
`

func TestRender(t *testing.T) {
	r := resolver(t, rendering)
	facts := func(m string) Facts {
		return Facts{MAC: mac(m), UUID: "u-1", Arch: "x86_64", Platform: "efi", Serial: "SN1", Hostname: "ipxe-name",
			IP: netip.MustParseAddr("10.10.0.200")}
	}

	m, ok := r.Resolve(facts("52:54:00:00:00:01"))
	if !ok {
		t.Fatal(m.Reason)
	}
	wantData := Data{MAC: "52:54:00:00:00:01", MACDash: "52-54-00-00-00-01", IP: "10.10.0.11", Hostname: "node01",
		UUID: "u-1", Arch: "x86_64", Platform: "efi", Serial: "SN1", Labels: map[string]string{"role": "worker", "rack": "r12"},
		Profile: "every", ServerIP: "10.10.0.1", BaseURL: base, AssetsURL: base + "/assets",
		ConfigURL: base + "/configs/52-54-00-00-00-01", BootedURL: base + "/booted/52-54-00-00-00-01"}
	if d := cmp.Diff(wantData, m.Data); d != "" {
		t.Errorf("data (-want +got):\n%s", d)
	}
	wantArgs := "mac=52:54:00:00:00:01 dash=52-54-00-00-00-01 ip=10.10.0.11 host=node01 uuid=u-1 " +
		"arch=x86_64 platform=efi serial=SN1 rack=r12 profile=every " +
		"server=10.10.0.1 base=" + base + " assets=" + base + "/assets ds=nocloud-net;s=" + base + "/configs/52-54-00-00-00-01/ booted=" + base + "/booted/52-54-00-00-00-01 X86_64"
	args, err := m.KernelArgs()
	if err != nil || args != wantArgs {
		t.Errorf("KernelArgs = %q, %v\nwant %q", args, err, wantArgs)
	}

	tests := []struct {
		name    string
		mac     string
		script  string
		configs map[string]string // kind → body; absent kinds must be ok=false
	}{
		{"kernel from assets, initrd names", "52:54:00:00:00:01", "#!ipxe\n" +
			"kernel " + base + "/assets/debian/vmlinuz initrd=initrd.gz initrd=initrd-2.gz initrd=initrd-3.gz initrd=my_firmware.cpio " + wantArgs + "\n" +
			"initrd --name initrd.gz " + base + "/assets/debian/initrd.gz\n" +
			"initrd --name initrd-2.gz " + base + "/assets/extra/initrd.gz\n" +
			"initrd --name initrd-3.gz http://mirror.example/fw/initrd.gz?v=2\n" +
			"initrd --name my_firmware.cpio " + base + "/assets/my%20firmware.cpio\n" +
			"boot\n",
			map[string]string{UserData: "#cloud-config\nhostname: node01\n", MetaData: "instance-id: 52:54:00:00:00:01\n"}},
		{"URLs as they are", "52:54:00:00:00:02", "#!ipxe\n" +
			"kernel https://mirror.example/debian/linux initrd=initrd.gz\n" +
			"initrd --name initrd.gz https://mirror.example/debian/initrd.gz\n" +
			"boot\n",
			map[string]string{Ignition: `{"ignition": {"version": "3.4.0"}, "host": "node02"}`}},
		{"script gets its signature", "52:54:00:00:00:03", "#!ipxe\necho 52:54:00:00:00:03 boots from disk\nexit\n", nil},
		{"script keeps its signature first", "52:54:00:00:00:04", "#!ipxe\nsanboot --no-describe --drive 0x80\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, ok := r.Resolve(facts(tt.mac))
			if !ok {
				t.Fatal(m.Reason)
			}
			got, err := m.Script()
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.script, got); d != "" {
				t.Errorf("script (-want +got):\n%s", d)
			}
			for _, kind := range []string{UserData, MetaData, Ignition} {
				body, ok, err := m.Config(kind)
				want, wantOK := tt.configs[kind]
				if err != nil || ok != wantOK || body != want {
					t.Errorf("Config(%s) = %q, %v, %v; want %q, %v", kind, body, ok, err, want, wantOK)
				}
			}
		})
	}

	// A label the template needs and the machine lacks is an error, not a panic or "<no value>".
	m, _ = r.Resolve(facts("52:54:00:00:00:05"))
	if _, err := m.Script(); err == nil || !strings.Contains(err.Error(), "rack") {
		t.Errorf("missing label: err = %v", err)
	}
	if _, _, err := m.Config("vendor-data"); err == nil {
		t.Error("unknown config kind accepted")
	}
}

func TestAssetKind(t *testing.T) {
	r := resolver(t, rendering)
	tests := []struct{ profile, asset, want string }{
		{"every", "debian/vmlinuz", AssetKernel},
		{"every", "/debian/vmlinuz", AssetKernel},
		{"every", "extra/initrd.gz", AssetInitrd},
		{"every", "my firmware.cpio", AssetInitrd},
		{"every", "debian/other", ""},
		{"urls", "debian/linux", ""},
		{"nope", "debian/vmlinuz", ""},
	}
	for _, tt := range tests {
		if got := r.AssetKind(tt.profile, tt.asset); got != tt.want {
			t.Errorf("AssetKind(%q, %q) = %q, want %q", tt.profile, tt.asset, got, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	cfg := load(t, rendering)
	for _, u := range []string{"", "10.0.0.1", "ftp://x", "http://"} {
		if _, err := New(Config{Conf: cfg, BaseURL: u}); err == nil {
			t.Errorf("base URL %q accepted", u)
		}
	}
	if _, err := New(Config{BaseURL: base}); err == nil {
		t.Error("nil config accepted")
	}
	r, err := New(Config{Conf: cfg, BaseURL: base + "/"})
	if err != nil {
		t.Fatal(err)
	}
	// The resolver owns its data: changing the configuration afterwards changes nothing.
	cfg.Profiles[0].Kernel = "changed"
	cfg.Profiles[0].Initrds[0] = "changed"
	cfg.Reservations[0].Labels["rack"] = "changed"
	m, _ := r.Resolve(Facts{MAC: mac("52:54:00:00:00:01")})
	s, err := m.Script()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s, "changed") || strings.Contains(s, base+"//") {
		t.Errorf("script follows the config after New:\n%s", s)
	}

	bad := load(t, rendering)
	bad.Profiles[0].Args = "{{.Nope"
	if _, err := New(Config{Conf: bad, BaseURL: base}); err == nil {
		t.Error("bad template accepted")
	}
}

func TestConcurrent(t *testing.T) {
	r := resolver(t, rendering)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				m, ok := r.Resolve(Facts{MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(1 + i%4)}})
				if !ok {
					t.Error(m.Reason)
					return
				}
				if _, err := m.Script(); err != nil {
					t.Error(err)
					return
				}
				m.Data.Labels["x"] = "y" // each match has its own labels
			}
		}()
	}
	wg.Wait()
}
