package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Settings that parse but cannot mean what they say are refused, each with its line and field;
// the nearest good setting is accepted.
func TestRefusedSettings(t *testing.T) {
	const head = "interface: {mode: authoritative, server_ip: 10.0.0.1}\n"
	for _, tc := range []struct {
		name, yaml string
		want       string // "" = accepted
	}{
		{"pool holding the server address", head + "subnets:\n  - cidr: 10.0.0.0/24\n    pools: [\"10.0.0.1-10.0.0.50\"]\n",
			"line 4: subnets[0].pools[0]: 10.0.0.1-10.0.0.50 contains the server's own address 10.0.0.1"},
		{"pool holding the network address", head + "subnets:\n  - cidr: 10.0.0.0/24\n    pools: [\"10.0.0.0-10.0.0.0\"]\n",
			"line 4: subnets[0].pools[0]: 10.0.0.0-10.0.0.0 contains the network address 10.0.0.0"},
		{"pool holding the broadcast address", head + "subnets:\n  - cidr: 10.0.0.0/24\n    pools: [\"10.0.0.100-10.0.0.255\"]\n",
			"line 4: subnets[0].pools[0]: 10.0.0.100-10.0.0.255 contains the broadcast address 10.0.0.255"},
		{"relayed subnet's broadcast", head + "subnets:\n  - cidr: 10.0.0.0/24\n  - cidr: 10.0.8.0/22\n    pools: [\"10.0.9.0-10.0.11.255\"]\n",
			"line 5: subnets[1].pools[0]: 10.0.9.0-10.0.11.255 contains the broadcast address 10.0.11.255"},
		{"pool between them", head + "subnets:\n  - cidr: 10.0.0.0/24\n    pools: [\"10.0.0.2-10.0.0.254\"]\n", ""},
		{"a /31 has no network or broadcast address", head + "subnets:\n  - cidr: 10.0.0.0/24\n  - cidr: 10.0.5.0/31\n    pools: [\"10.0.5.0-10.0.5.1\"]\n", ""},
		{"reservation on the server address", head + "subnets: [{cidr: 10.0.0.0/24}]\nreservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.0.0.1}\n",
			"line 4: reservations[0].ip: 10.0.0.1 is the server's own address"},
		{"broadcast MAC", head + "subnets: [{cidr: 10.0.0.0/24}]\nreservations:\n  - {mac: \"FF:FF:FF:FF:FF:FF\", ip: 10.0.0.5}\n",
			"line 4: reservations[0].mac: ff:ff:ff:ff:ff:ff is the broadcast address, no machine's"},
		{"zero MAC", head + "subnets: [{cidr: 10.0.0.0/24}]\nreservations:\n  - {mac: \"00:00:00:00:00:00\", ip: 10.0.0.5}\n",
			"line 4: reservations[0].mac: 00:00:00:00:00:00 is no machine's address"},
		{"broadcast MAC in a selector", head + "subnets: [{cidr: 10.0.0.0/24}]\nprofiles: [{name: p, script: exit}]\ngroups:\n  - {profile: p, selector: {mac: \"ff:ff:ff:ff:ff:ff\"}}\n",
			"line 5: groups[0].selector.mac: ff:ff:ff:ff:ff:ff is the broadcast address"},
		{"hostname with a newline", head + "subnets: [{cidr: 10.0.0.0/24}]\nreservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.0.0.5, hostname: \"node5\\nevil\"}\n",
			`line 4: reservations[0].hostname: "node5\nevil": no spaces or control characters in a host name`},
		{"hostname with DEL", head + "subnets: [{cidr: 10.0.0.0/24}]\nreservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.0.0.5, hostname: \"node\\x7f\"}\n",
			`reservations[0].hostname: "node\x7f": no spaces or control characters`},
		{"hostname with an escape", head + "subnets: [{cidr: 10.0.0.0/24}]\nreservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.0.0.5, hostname: \"\\e[31mnode\"}\n",
			`reservations[0].hostname: "\x1b[31mnode": no spaces or control characters`},
		{"selector hostname with a tab", head + "subnets: [{cidr: 10.0.0.0/24}]\nprofiles: [{name: p, script: exit}]\ngroups:\n  - {profile: p, selector: {hostname: \"a\\tb\"}}\n",
			`line 5: groups[0].selector.hostname: "a\tb": no spaces or control characters`},
		{"good reservation", head + "subnets: [{cidr: 10.0.0.0/24}]\nreservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.0.0.5, hostname: node-5.rack.example}\n", ""},
		{"blksize below RFC 2348", head + "subnets: [{cidr: 10.0.0.0/24}]\ntftp: {max_blksize: 7}\n", "line 3: tftp.max_blksize: 7: want 8-65464 (RFC 2348)"},
		{"blksize above RFC 2348", head + "subnets: [{cidr: 10.0.0.0/24}]\ntftp:\n  max_blksize: 65465\n", "line 4: tftp.max_blksize: 65465: want 8-65464 (RFC 2348)"},
		{"smallest blksize of RFC 2348", head + "subnets: [{cidr: 10.0.0.0/24}]\ntftp: {max_blksize: 8}\n", ""},
		{"unconfirmed TFTP transfers above the total", head + "subnets: [{cidr: 10.0.0.0/24}]\ntftp: {max_transfers: 10, max_unconfirmed: 11}\n",
			"line 3: tftp.max_unconfirmed: 11: above max_transfers (10)"},
		{"negative upload quota", head + "subnets: [{cidr: 10.0.0.0/24}]\ntftp: {upload_quota: -1}\n", "line 3: tftp.upload_quota: -1: must be positive"},
		{"missing ipxe dir", head + "subnets: [{cidr: 10.0.0.0/24}]\ntftp: {ipxe_dir: /nonexistent/ipxe}\n", "line 3: tftp.ipxe_dir: /nonexistent/ipxe is not a directory"},
		{"assets is a file", head + "subnets: [{cidr: 10.0.0.0/24}]\nhttp: {assets: /dev/null}\n", "line 3: http.assets: /dev/null is not a directory"},
		{"missing assets", head + "subnets: [{cidr: 10.0.0.0/24}]\nhttp: {assets: /nonexistent/assets}\n", "line 3: http.assets: /nonexistent/assets is not a directory"},
		{"HTTPS without a key", head + "subnets: [{cidr: 10.0.0.0/24}]\nhttp:\n  tls: {listen: \":443\", cert: /etc/hostname}\n", "line 4: http.tls: cert and key are both required"},
		{"HTTPS listen without a port", head + "subnets: [{cidr: 10.0.0.0/24}]\nhttp:\n  tls: {listen: \"10.0.0.1\", cert: /a, key: /b}\n", `line 4: http.tls.listen: "10.0.0.1": want host:port`},
		{"HTTPS with a pair that does not load", head + "subnets: [{cidr: 10.0.0.0/24}]\nhttp:\n  tls: {listen: \":443\", cert: /nonexistent/tls.crt, key: /nonexistent/tls.key}\n",
			"line 4: http.tls.cert: /nonexistent/tls.crt with key /nonexistent/tls.key: open /nonexistent/tls.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) { checkVerdict(t, tc.yaml, tc.want) })
	}
}

// No uploaded file may be served, and no served directory may take new files from an upload:
// upload_dir must be apart from the TFTP root, the iPXE directory and the assets.
func TestUploadDirApartFromServedDirectories(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"tftp", "tftp/up", "assets", "assets/up", "up", "up/tftp", "ipxe"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "tftp"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, tc := range []struct {
		name                 string
		upload, root, assets string
		want                 string // "" = accepted
	}{
		{"the TFTP root itself", p("tftp"), p("tftp"), "", p("tftp") + " is tftp.root: uploaded files would be served"},
		{"the root by another name", p("link"), p("tftp"), "", " is tftp.root: uploaded files would be served"},
		{"the root with a trailing slash", p("tftp") + "/", p("tftp"), "", " is tftp.root"},
		{"inside the TFTP root", p("tftp/up"), p("tftp"), "", p("tftp/up") + " is inside tftp.root (" + p("tftp") + "): uploaded files would be served"},
		{"inside the assets", p("assets/up"), "", p("assets"), p("assets/up") + " is inside http.assets (" + p("assets") + ")"},
		{"the assets themselves", p("assets"), "", p("assets"), " is http.assets"},
		{"around the TFTP root", p("up"), p("up/tftp"), "", p("up") + " contains tftp.root (" + p("up/tftp") + "): uploads could add files that are served"},
		{"apart", p("up"), p("tftp"), p("assets"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{Interface: Interface{Mode: ModeProxy, ServerIP: mustAddr("10.0.0.1")},
				TFTP: TFTP{UploadDir: tc.upload, Root: tc.root, IPXEDir: p("ipxe")}, HTTP: HTTP{Assets: tc.assets}}
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "tftp.upload_dir: ") || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v\nwant tftp.upload_dir: ...%s", err, tc.want)
			}
		})
	}
}

// check (ValidateFile) reads a file before the interface is known: no server address yet, so
// its rules wait for attach (Validate), which applies them.
func TestServerAddressRulesWaitForTheInterface(t *testing.T) {
	c, err := Parse([]byte("subnets:\n  - cidr: 10.0.0.0/24\n    pools: [\"10.0.0.1-10.0.0.50\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ValidateFile(); err != nil {
		t.Fatalf("check without a server address: %v", err)
	}
	c.ApplyInterface(mustAddr("10.0.0.1"), mustPrefix("10.0.0.0/24"))
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "contains the server's own address 10.0.0.1") {
		t.Errorf("attach: %v", err)
	}
	// Reservation mode without subnets takes the interface's: a file alone is fine, authoritative
	// mode still needs its subnets.
	for mode, ok := range map[string]bool{"reservation": true, "proxy": true, "authoritative": false} {
		c, err := Parse([]byte("interface: {mode: " + mode + "}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.ValidateFile(); (err == nil) != ok {
			t.Errorf("%s mode without subnets: %v", mode, err)
		}
	}
}

func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// checkVerdict parses and validates yaml: accepted when want is empty, else refused with an
// error that contains want.
func checkVerdict(t *testing.T, yaml, want string) {
	t.Helper()
	c, err := Parse([]byte(yaml))
	if err == nil {
		err = c.Validate()
	}
	switch {
	case want == "" && err != nil:
		t.Errorf("refused: %v", err)
	case want != "" && err == nil:
		t.Errorf("accepted, want %s:\n%s", want, yaml)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error %v\nwant it to contain %q", err, want)
	}
}
