package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// load writes text to a file named netbootd.yaml and reads it as netbootd would.
func load(t *testing.T, text string) (*Config, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "netbootd.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	return c, path, err
}

// A misspelt key is refused at every depth, with file, line, field path and the key it
// probably meant; before, keys inside subnets, reservations, options, profiles and groups were
// dropped without a word (a group's "selectr:" made it match every machine).
func TestUnknownKeyAtEveryDepth(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		line       int
		field      string
		meant      string
	}{
		{"top level", "interface: {mode: proxy}\nsubnetz: []\n", 2, "subnetz", "subnets"},
		{"interface", "interface:\n  mod: proxy\n", 2, "interface.mod", "mode"},
		{"HTTPS", "interface: {mode: proxy}\nhttp:\n  tls:\n    listn: \":443\"\n", 4, "http.tls.listn", "listen"},
		{"storm", "interface: {mode: proxy}\ndhcp:\n  storm:\n    per_source_rat: 5\n", 4, "dhcp.storm.per_source_rat", "per_source_rate"},
		{"subnet pool", "subnets:\n  - cidr: 10.0.0.0/24\n    pool: [\"10.0.0.100-10.0.0.150\"]\n", 3, "subnets[0].pool", "pools"},
		{"subnet lease time", "subnets:\n  - cidr: 10.0.0.0/24\n  - cidr: 10.0.1.0/24\n    lease_tme: 1h\n", 4, "subnets[1].lease_tme", "lease_time"},
		{"subnet option", "subnets:\n  - cidr: 10.0.0.0/24\n    options:\n      routr: 10.0.0.1\n", 4, "subnets[0].options.routr", "router"},
		{"custom option", "subnets:\n  - cidr: 10.0.0.0/24\n    options:\n      custom:\n        - {code: 150, type: ip, vaule: 10.0.0.9}\n", 5, "subnets[0].options.custom[0].vaule", "value"},
		{"subnet boot", "subnets:\n  - cidr: 10.0.0.0/24\n    boot: {efi_x86: ipxe.efi}\n", 3, "subnets[0].boot.efi_x86", "efi_x64"},
		{"reservation hostname", "reservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.0.0.5, hostnme: node5}\n", 2, "reservations[0].hostnme", "hostname"},
		{"reservation profile", "reservations:\n  - mac: \"02:00:00:00:00:01\"\n    ip: 10.0.0.5\n    profle: wipe\n", 4, "reservations[0].profle", "profile"},
		{"reservation option", "reservations:\n  - mac: \"02:00:00:00:00:01\"\n    options: {dn: 10.0.0.53}\n", 3, "reservations[0].options.dn", "dns"},
		{"reservation boot", "reservations:\n  - mac: \"02:00:00:00:00:01\"\n    boot:\n      bois: undionly.kpxe\n", 4, "reservations[0].boot.bois", "bios"},
		{"profile kernel", "profiles:\n  - name: p\n    kernal: vmlinuz\n", 3, "profiles[0].kernal", "kernel"},
		{"profile initrds", "profiles:\n  - name: p\n    kernel: vmlinuz\n    initrd: [initrd.gz]\n", 4, "profiles[0].initrd", "initrds"},
		{"group profile", "groups:\n  - {name: g, profle: p}\n", 2, "groups[0].profle", "profile"},
		{"group selector", "groups:\n  - name: wipe\n    profile: wipe\n    selectr: {hostname: node5}\n", 4, "groups[0].selectr", "selector"},
		{"selector field", "groups:\n  - name: wipe\n    selector:\n      hostnam: node5\n", 4, "groups[0].selector.hostnam", "hostname"},
		{"case", "tftp: {Root: /srv}\n", 1, "tftp.Root", "root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, path, err := load(t, tc.yaml)
			want := path + ":" + strconv.Itoa(tc.line) + ": " + tc.field + `: unknown field; did you mean "` + tc.meant + `"?`
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v\nwant it to contain %s", err, want)
			}
		})
	}
}

// A key like no known one lists the keys the section has.
func TestUnknownKeyListsKnownOnes(t *testing.T) {
	_, err := Parse([]byte("syslog:\n  wibble: 1\n"))
	want := "line 2: syslog.wibble: unknown field (known: booted_pattern, listen, max_per_second)"
	if err == nil || err.Error() != want {
		t.Errorf("error %v\nwant %s", err, want)
	}
}

// One run reports every problem of the file: misspelt keys at several depths, bad values,
// and (from validation) what the remaining values break, each on its own line.
func TestEveryProblemInOneRun(t *testing.T) {
	c, path, err := load(t, `interface: {mode: authoritative, server_ip: 10.0.0.1}
subnets:
  - cidr: 10.0.0.0/24
    pool: ["10.0.0.100-10.0.0.150"]
    lease_tme: 1h
    pools: ["10.0.0.1-10.0.0.20"]
reservations:
  - {mac: "zz", ip: 10.0.0.30}
  - {mac: "02:00:00:00:00:02", ip: 10.0.0.300, hostnme: x}
groups:
  - {name: wipe, profle: wipe, selectr: {hostname: x}}
dhcp: {workers: many}
`)
	if c == nil || err == nil {
		t.Fatalf("want the partly read configuration and the reading errors, got %v and %v", c, err)
	}
	// Validation repeats what reading refused, with its own findings, in the order of the file.
	verr := c.ValidateFile()
	if verr == nil {
		t.Fatal("valid")
	}
	all := strings.Split(verr.Error(), "\n")
	last := 0
	for _, l := range all {
		n, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(l, path+":"), ":", 2)[0])
		if n < last {
			t.Errorf("not in the order of the file: line %d after line %d", n, last)
		}
		last = n
	}
	want := []string{
		path + `:4: subnets[0].pool: unknown field; did you mean "pools"?`,
		path + `:5: subnets[0].lease_tme: unknown field; did you mean "lease_time"?`,
		path + `:8: reservations[0].mac: "zz" is not an Ethernet MAC address`,
		path + `:9: reservations[1].ip: ParseAddr("10.0.0.300")`,
		path + `:9: reservations[1].hostnme: unknown field; did you mean "hostname"?`,
		path + `:11: groups[0].profle: unknown field; did you mean "profile"?`,
		path + `:11: groups[0].selectr: unknown field; did you mean "selector"?`,
		path + ":12: dhcp.workers: cannot unmarshal !!str `many` into int",
		path + `:6: subnets[0].pools[0]: 10.0.0.1-10.0.0.20 contains the server's own address 10.0.0.1`,
		path + `:11: groups[0].profile: missing`,
	}
	for _, w := range want {
		found := false
		for _, line := range all {
			found = found || strings.HasPrefix(line, w)
		}
		if !found {
			t.Errorf("missing %s\nin:\n%s", w, strings.Join(all, "\n"))
		}
	}
	// A value refused while reading is not reported again as missing.
	for _, line := range all {
		if strings.Contains(line, "reservations[0].mac: missing") || strings.Contains(line, "reservations[1].ip: missing") {
			t.Errorf("follow-on error: %s", line)
		}
	}
	if len(all) != len(want) {
		t.Errorf("%d errors, want %d:\n%s", len(all), len(want), strings.Join(all, "\n"))
	}
}

// Anchors and merge keys are read with the same strictness, and aliases that refer to
// themselves or expand without bound are refused, not followed forever.
func TestAliases(t *testing.T) {
	_, err := Parse([]byte(`interface: {mode: proxy, server_ip: 10.0.0.1}
x-opts: &opts {router: 10.0.0.1, dns: [10.0.0.53]}
`))
	if err == nil || !strings.Contains(err.Error(), "line 2: x-opts: unknown field") {
		t.Errorf("unknown top-level anchor holder: %v", err)
	}

	c, err := Parse([]byte(`interface: {mode: proxy, server_ip: 10.0.0.1}
subnets:
  - cidr: 10.0.0.0/24
    options: &opts {router: 10.0.0.1, dns: [10.0.0.53]}
  - cidr: 10.0.1.0/24
    options:
      <<: *opts
      mtu: 9000
`))
	if err != nil {
		t.Fatal(err)
	}
	if o := c.Subnets[1].Options; len(o.DNS) != 1 || o.MTU != 9000 || len(o.Router) != 1 {
		t.Errorf("merged options: %+v", o)
	}

	_, err = Parse([]byte("subnets:\n  - cidr: 10.0.0.0/24\n    options: &o {routr: 10.0.0.1}\n  - options: *o\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3: subnets[0].options.routr: unknown field") ||
		!strings.Contains(err.Error(), "line 3: subnets[1].options.routr: unknown field") {
		t.Errorf("misspelt key behind an alias: %v", err)
	}

	_, err = Parse([]byte("subnets:\n  - cidr: 10.0.0.0/24\n    options: &o {<<: *o}\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3: subnets[0].options: alias *o refers to itself") {
		t.Errorf("self-referring alias: %v", err)
	}

	// "Billion laughs": ten merges of ten merges ... of one key, nine levels deep.
	var doc strings.Builder
	doc.WriteString("x0: &a0 {lease_time: 1h}\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&doc, "x%d: &a%d {<<: [%s]}\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
	}
	doc.WriteString("subnets:\n  - <<: *a9\n")
	_, err = Parse([]byte(doc.String()))
	if err == nil || !strings.Contains(err.Error(), "subnets[0].lease_time: aliases expand to more than") {
		t.Errorf("billion laughs: %v", err)
	}
}

// Keys written twice are refused: yaml.v3 does that for its own mappings, and this reader
// keeps it.
func TestKeySetTwice(t *testing.T) {
	_, err := Parse([]byte("subnets:\n  - cidr: 10.0.0.0/24\n    lease_time: 1h\n    lease_time: 2h\n"))
	if err == nil || !strings.Contains(err.Error(), "line 4: subnets[0].lease_time: set twice (first on line 3)") {
		t.Errorf("error %v", err)
	}
}

// Problems inside a list item get the item's own lines from the file, but an item an inventory
// put at that index (Kubernetes Profiles replacing the file's) gets none of the file's lines.
func TestLinesFollowTheItem(t *testing.T) {
	c, err := Parse([]byte(`interface: {mode: proxy, server_ip: 10.0.0.1}
profiles:
  - {name: replaced, script: exit}
  - name: kept
    kernel: vmlinuz
    args: "{{.Broken"
`))
	if err != nil {
		t.Fatal(err)
	}
	kept := c.Profiles[1]
	c.Profiles = []Profile{kept, {Name: "from-inventory", Kernel: "/etc/shadow"}}
	err = c.Validate()
	if err == nil {
		t.Fatal("valid")
	}
	for _, want := range []string{"line 4: profiles[0].args: template:", "\nprofiles[1].kernel: \"/etc/shadow\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nwant it to contain %q", err, want)
		}
	}
}
