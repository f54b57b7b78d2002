// Package config is netbootd's YAML configuration: what it is, how it is read, and the checks
// that reject a bad file with the line and field at fault before anything starts.
package config

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Mode says how the DHCP server behaves on its interface.
type Mode string

const (
	// ModeAuthoritative answers reservations and hands out pool addresses.
	ModeAuthoritative Mode = "authoritative"
	// ModeReservation answers reserved MACs only and is silent to every other client.
	ModeReservation Mode = "reservation"
	// ModeProxy is proxyDHCP: boot information for PXE clients, never an address.
	ModeProxy Mode = "proxy"
)

// Config is the whole configuration file.
type Config struct {
	Interface    Interface     `yaml:"interface"`
	StateDir     string        `yaml:"state_dir"`
	HTTP         HTTP          `yaml:"http"`
	TFTP         TFTP          `yaml:"tftp"`
	DHCP         DHCP          `yaml:"dhcp"`
	DHCP6        DHCP6         `yaml:"dhcp6"`
	Boot         Boot          `yaml:"boot"`
	Subnets      []Subnet      `yaml:"subnets"`
	Reservations []Reservation `yaml:"reservations"`
	Profiles     []Profile     `yaml:"profiles"`
	Groups       []Group       `yaml:"groups"`
	Classes      []Class       `yaml:"classes"`
	Syslog       Syslog        `yaml:"syslog"`

	// Source is the file the configuration was read from, for error messages; "" for none.
	Source string `yaml:"-"`
	// lines are where each setting was written (field path → line), undecoded the paths whose
	// values were refused while reading, readProblems what reading refused; for validation.
	lines map[string]int
	// links are the interfaces served (ApplyLinks); with several, each answers from its own address.
	links        []Link
	undecoded    map[string]bool
	readProblems []problem
}

// Syslog receives machines' syslog (UDP) onto their boot timelines. Off unless Listen is set.
type Syslog struct {
	Listen        string `yaml:"listen"`         // e.g. "10.10.0.1:514"; "" = off
	BootedPattern string `yaml:"booted_pattern"` // a regexp; a matching line marks the machine booted
	MaxPerSecond  int    `yaml:"max_per_second"` // lines per second per machine (default 50, burst 2x)
}

// Interface is the served interface's role.
type Interface struct {
	Mode     Mode       `yaml:"mode"`
	ServerIP netip.Addr `yaml:"server_ip"` // default: the interface's first IPv4 address
	// IPv6RA answers router solicitations with "no router, no DHCPv6", so iPXE does not wait
	// ~14 s for IPv6 configuration. Only for links without an IPv6 router.
	IPv6RA bool `yaml:"ipv6_ra"`
}

// HTTP is the HTTP server's configuration.
type HTTP struct {
	Listen  string `yaml:"listen"`   // default ":80"; attach's --http-listen is written here
	Assets  string `yaml:"assets"`   // kernels, initrds, images: served under /assets/ with Range
	BaseURL string `yaml:"base_url"` // how machines reach this server; default http://SERVER_IP:PORT
	// MgmtListen is the management listener (/api/v1/, /metrics): default 127.0.0.1:9180.
	MgmtListen string `yaml:"mgmt_listen"`
	// MgmtTokenFile holds the bearer token /api/v1/ requests must carry; "" = no token.
	MgmtTokenFile string `yaml:"mgmt_token_file"`
	// Concurrent /assets/ and /ipxe/ downloads, in total (default 512) and per client address
	// (default 4); 0 = the default.
	MaxDownloads          int `yaml:"max_downloads"`
	MaxDownloadsPerClient int `yaml:"max_downloads_per_client"`
	// TLS serves the boot routes over HTTPS as well; off unless tls.listen is set.
	TLS HTTPTLS `yaml:"tls"`
}

// HTTPTLS is the boot listener over HTTPS.
type HTTPTLS struct {
	Listen string `yaml:"listen"` // host:port, e.g. ":443"; "" = no HTTPS
	Cert   string `yaml:"cert"`   // PEM certificate, chain after it; reloaded when the file changes
	Key    string `yaml:"key"`    // PEM private key; reloaded with the certificate
}

// TFTP is the TFTP server's configuration.
type TFTP struct {
	Enabled      *bool  `yaml:"enabled"`        // default true
	Root         string `yaml:"root"`           // files served by name; "" = only the iPXE binaries
	IPXEDir      string `yaml:"ipxe_dir"`       // iPXE binaries served when root lacks them; default /usr/lib/ipxe (Debian's ipxe)
	MaxWindow    int    `yaml:"max_window"`     // cap on RFC 7440 windowsize (default 64)
	MaxBlockSize int    `yaml:"max_blksize"`    // cap on blksize (default 1468: a 1500-byte MTU)
	MaxTransfers int    `yaml:"max_transfers"`  // concurrent transfers (default 1024)
	MaxPerClient int    `yaml:"max_per_client"` // concurrent transfers per client address (default 16)
	SinglePort   bool   `yaml:"single_port"`    // every transfer on port 69 (NAT, Kubernetes Services)
	UploadDir    string `yaml:"upload_dir"`     // accepts uploads (WRQ) of new files here; "" refuses writes
	MaxUpload    int64  `yaml:"max_upload"`     // bytes per upload (default 64 MiB)
	// UploadQuota caps the bytes upload_dir holds in all (default 1 GiB): beyond, ERROR 3.
	UploadQuota int64 `yaml:"upload_quota"`
	// Transfers whose client has not acknowledged anything yet (possibly spoofed requests):
	// at most MaxUnconfirmed in all (default max_transfers/4; beyond, one gives way) and
	// MaxUnconfirmedPerClient per address (default 4; beyond, requests are dropped).
	MaxUnconfirmed          int `yaml:"max_unconfirmed"`
	MaxUnconfirmedPerClient int `yaml:"max_unconfirmed_per_client"`
}

// On reports whether the TFTP server runs (it does unless disabled).
func (t TFTP) On() bool { return t.Enabled == nil || *t.Enabled }

// ReuseFraction is ReuseThreshold as a fraction of the lease time (0 when unset).
func (d DHCP) ReuseFraction() float64 {
	if d.ReuseThreshold == nil {
		return 0
	}
	return float64(*d.ReuseThreshold) / 100
}

// DHCP tunes the DHCP server.
type DHCP struct {
	// Enabled false: netbootd answers no DHCP at all (no UDP 67 or 4011, no XDP program), for a
	// network whose own DHCP server points machines at netbootd's TFTP and HTTP. Default true.
	Enabled     *bool    `yaml:"enabled"`
	OfferHold   Duration `yaml:"offer_hold"`   // how long an offered address waits for its REQUEST
	DeclineHold Duration `yaml:"decline_hold"` // how long a DECLINEd address stays out of the pool
	Workers     int      `yaml:"workers"`      // requests handled at once (they wait on the lease store)
	Queue       int      `yaml:"queue"`        // requests waiting for a worker before new ones are dropped
	Storm       Storm    `yaml:"storm"`
	// MaxLeasesPerCircuit caps the dynamic leases behind one relay circuit (option 82
	// circuit-id); 0: no cap. A MAC holds at most one lease per subnet in any case.
	MaxLeasesPerCircuit int `yaml:"max_leases_per_circuit"`
	// MaxDeclinesPerMAC caps the addresses one MAC holds out of the pools with DHCPDECLINE at
	// once (each for decline_hold); beyond it, its declines are refused (default 3).
	MaxDeclinesPerMAC int `yaml:"max_declines_per_mac"`
	// ReuseThreshold: a renewal within this percentage of the lease time after the client's
	// lease was written reuses that lease as it is on disk (no write; the ACK grants what is
	// left of it), like ISC dhcpd's dhcp-cache-threshold. 0: every renewal is written. Default 25.
	ReuseThreshold *int `yaml:"reuse_threshold"`
	// Authoritative: this server knows every lease of its subnets, so a rebooting client it has
	// no record of is NAKed (or ACKed if the address is free) instead of ignored (Kea's
	// authoritative). Off, RFC 2131 §4.3.2 holds: no record, no answer.
	Authoritative bool `yaml:"authoritative"`
	// IgnoreClientID keys pool leases by MAC only, never by option 61 (dnsmasq's
	// dhcp-ignore-clid, Kea's match-client-id: false). Reservations always match by MAC.
	IgnoreClientID bool `yaml:"ignore_client_id"`
}

// On reports whether netbootd serves DHCP (it does unless disabled).
func (d DHCP) On() bool { return d.Enabled == nil || *d.Enabled }

// Storm is the XDP fast path's protection of the control plane against floods: what it drops
// before a request reaches Go. Reserved MACs and MACs with a lease are exempt from the rate for
// unknown MACs; configured relays from the rate per source.
type Storm struct {
	DuplicateWindow Duration `yaml:"duplicate_window"` // drop a DISCOVER repeating MAC and xid this soon (default 1s)
	PerSourceRate   uint64   `yaml:"per_source_rate"`  // requests/s passed up per Ethernet source (default 50)
	PerSourceBurst  uint64   `yaml:"per_source_burst"` // (default 2 x rate)
	UnknownRate     uint64   `yaml:"unknown_rate"`     // unknown-MAC requests/s in all (default 2000)
	UnknownBurst    uint64   `yaml:"unknown_burst"`    // (default 2 x rate)
	Off             bool     `yaml:"off"`              // no storm protection at all
}

// Boot says which boot file a PXE or iPXE client gets. Empty fields inherit: reservation →
// subnet → top level → built-in defaults.
type Boot struct {
	NextServer netip.Addr `yaml:"next_server"` // TFTP server (siaddr); default: the server address
	BIOS       string     `yaml:"bios"`        // arch 0
	EFI32      string     `yaml:"efi32"`       // arch 6
	EFIx64     string     `yaml:"efi_x64"`     // arch 7, 9
	ARM32      string     `yaml:"efi_arm32"`   // arch 10
	ARM64      string     `yaml:"efi_arm64"`   // arch 11
	HTTPBoot   string     `yaml:"http_boot"`   // UEFI HTTP boot (vendor class HTTPClient, arch 16 and others)
	IPXEScript string     `yaml:"ipxe_script"` // what iPXE (user class "iPXE") chains to
}

// Subnet is one IPv4 subnet the server hands addresses in: the local one, or one behind a relay.
type Subnet struct {
	CIDR           netip.Prefix `yaml:"cidr"`
	Pools          []Range      `yaml:"pools"`
	LeaseTime      Duration     `yaml:"lease_time"`      // default 1h
	RelayAddresses []netip.Addr `yaml:"relay_addresses"` // giaddrs outside CIDR that select this subnet
	Relays         []netip.Addr `yaml:"relays"`          // IP sources of the relays trusted to forward for it (giaddr from anyone else: dropped)
	Options        Options      `yaml:"options"`
	Boot           Boot         `yaml:"boot"`
	Line           int          `yaml:"-"`
}

// Reservation pins a MAC to an address.
type Reservation struct {
	MAC      MAC               `yaml:"mac"`
	IP       netip.Addr        `yaml:"ip"`
	IP6      netip.Addr        `yaml:"ip6"` // its DHCPv6 address (dhcp6); unset: one from dhcp6.pool
	Hostname string            `yaml:"hostname"`
	Profile  string            `yaml:"profile"` // overrides the groups
	Labels   map[string]string `yaml:"labels"`  // what group selectors match
	Options  Options           `yaml:"options"` // override the subnet's
	Boot     Boot              `yaml:"boot"`
	// Netboot false: an address and options, never a boot file (a machine that must boot
	// from its disk). Unset or true: network boot as configured.
	Netboot *bool `yaml:"netboot"`
	// PXE is option 43 for this machine's firmware PXE, over any class's.
	PXE *PXEVendor `yaml:"pxe"`
	// PiSerial is a Raspberry Pi's serial number: its bootloader asks TFTP for SERIAL/FILE.
	// Those requests are served from TFTPFolder/FILE, else FILE at the TFTP root (see pi.go).
	PiSerial   string `yaml:"pi_serial"`
	TFTPFolder string `yaml:"tftp_folder"` // under tftp.root; default: the serial
	Line       int    `yaml:"-"`
}

// NoNetboot reports whether the reservation must not be told a boot file.
func (r *Reservation) NoNetboot() bool { return r.Netboot != nil && !*r.Netboot }

// Options are the DHCP options sent to clients.
type Options struct {
	Router    AddrList    `yaml:"router"`
	DNS       AddrList    `yaml:"dns"`
	NTP       AddrList    `yaml:"ntp"`
	Domain    string      `yaml:"domain"`
	Broadcast netip.Addr  `yaml:"broadcast"` // default: from the subnet
	MTU       uint16      `yaml:"mtu"`
	Custom    []CustomOpt `yaml:"custom"`
}

// CustomOpt is an arbitrary option by code with a typed value. It is sent when the client asks
// for it in option 55, or always when Always is set.
type CustomOpt struct {
	Code   uint8  `yaml:"code"`
	Type   string `yaml:"type"` // ip, ips, string, uint8, uint16, uint32, bool, hex
	Value  string `yaml:"value"`
	Always bool   `yaml:"always"`
	Data   []byte `yaml:"-"` // the encoded value, set by Validate
	Line   int    `yaml:"-"`
}

// Range is an inclusive address range, written "10.0.0.100-10.0.0.200".
type Range struct {
	First, Last netip.Addr
}

// Size is the number of addresses in the range.
func (r Range) Size() int {
	a, b := r.First.As4(), r.Last.As4()
	return int(binary.BigEndian.Uint32(b[:])-binary.BigEndian.Uint32(a[:])) + 1
}

// Contains reports whether ip is in the range.
func (r Range) Contains(ip netip.Addr) bool {
	return ip.Is4() && r.First.Compare(ip) <= 0 && ip.Compare(r.Last) <= 0
}

func (r Range) String() string { return r.First.String() + "-" + r.Last.String() }

// UnmarshalText reads "first-last".
func (r *Range) UnmarshalText(b []byte) error {
	first, last, ok := strings.Cut(string(b), "-")
	if !ok {
		return fmt.Errorf("pool %q: want first-last, e.g. 10.0.0.100-10.0.0.200", b)
	}
	f, err := netip.ParseAddr(strings.TrimSpace(first))
	if err != nil || !f.Is4() {
		return fmt.Errorf("pool %q: %q is not an IPv4 address", b, first)
	}
	l, err := netip.ParseAddr(strings.TrimSpace(last))
	if err != nil || !l.Is4() {
		return fmt.Errorf("pool %q: %q is not an IPv4 address", b, last)
	}
	if l.Less(f) {
		return fmt.Errorf("pool %q: last address before first", b)
	}
	*r = Range{First: f, Last: l}
	return nil
}

// MAC is an Ethernet address.
type MAC net.HardwareAddr

func (m MAC) String() string { return net.HardwareAddr(m).String() }

// UnmarshalText reads "aa:bb:cc:dd:ee:ff".
func (m *MAC) UnmarshalText(b []byte) error {
	hw, err := net.ParseMAC(string(b))
	if err != nil || len(hw) != 6 {
		return fmt.Errorf("%q is not an Ethernet MAC address", b)
	}
	*m = MAC(hw)
	return nil
}

// AddrList is one IPv4 address or a list of them.
type AddrList []netip.Addr

// UnmarshalYAML accepts a scalar or a sequence.
func (l *AddrList) UnmarshalYAML(n *yaml.Node) error {
	var items []string
	switch n.Kind {
	case yaml.ScalarNode:
		items = []string{n.Value}
	case yaml.SequenceNode:
		if err := n.Decode(&items); err != nil {
			return err
		}
	default:
		return errors.New("want an address or a list of addresses")
	}
	out := make(AddrList, 0, len(items))
	for _, s := range items {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return fmt.Errorf("%q is not an IPv4 address", s)
		}
		out = append(out, a)
	}
	*l = out
	return nil
}

// Duration is a time.Duration written "90s", "10m", "12h", or a number of seconds.
type Duration time.Duration

// UnmarshalText reads a Go duration or whole seconds.
func (d *Duration) UnmarshalText(b []byte) error {
	s := string(b)
	if v, err := time.ParseDuration(s); err == nil {
		*d = Duration(v)
		return nil
	}
	var secs uint32
	if _, err := fmt.Sscanf(s, "%d", &secs); err == nil && fmt.Sprint(secs) == s {
		*d = Duration(time.Duration(secs) * time.Second)
		return nil
	}
	return fmt.Errorf("%q is not a duration (e.g. 90s, 10m, 12h)", s)
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Load reads a configuration file; call ApplyInterface, then Validate, before using it. Errors
// name the file, line and field ("netbootd.yaml:12: groups[0].selectr: unknown field; did you
// mean "selector"?"), every one the file has. Unless the file is not YAML at all, the partly
// read configuration comes back with them: its Validate (as `check` runs it) reports them again
// with whatever else is wrong, all in the order of the file.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, b)
}

// Parse decodes YAML strictly, as Load does, for a file without a name.
func Parse(b []byte) (*Config, error) { return parse("", b) }

func parse(source string, b []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, syntaxError(source, err)
	}
	c := &Config{Source: source}
	d := newDecoder(source, &root)
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		d.decode(root.Content[0], reflect.ValueOf(c).Elem(), "")
	}
	c.lines, c.undecoded, c.readProblems = d.lines, d.failed, d.list
	c.setDefaults()
	return c, d.err()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxError turns "yaml: line 3: did not find expected key" into "FILE:3: did not find expected key".
func syntaxError(source string, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("%s:%s: %s", cmp.Or(source, "line"), m[1], msg[len(m[0]):])
	}
	return fmt.Errorf("%s: %s", cmp.Or(source, "config"), strings.TrimPrefix(msg, "yaml: "))
}

// Default is the configuration of `netbootd attach IFACE` without --config: proxyDHCP beside
// whatever DHCP server the network already has.
func Default() *Config {
	return &Config{Interface: Interface{Mode: ModeProxy}}
}

// BaseURL is how machines reach the HTTP server, the prefix of every URL netbootd gives out
// (DHCP boot file, scripts, kernel arguments, configs, booted callback): http.base_url, else
// http://SERVER_IP[:PORT] from interface.server_ip and http.listen. The one place that rule lives.
func (c *Config) BaseURL() string {
	if c.HTTP.BaseURL != "" {
		return strings.TrimRight(c.HTTP.BaseURL, "/")
	}
	return c.URLAt(c.Interface.ServerIP)
}

// URLAt is the HTTP server as a client reaching it at addr sees it: http://ADDR[:PORT] from
// http.listen (IPv6 in brackets), ignoring http.base_url; "" for an invalid addr. DHCPv6
// answers with it at dhcp6.server_ip.
func (c *Config) URLAt(addr netip.Addr) string {
	if !addr.IsValid() {
		return ""
	}
	_, port, err := net.SplitHostPort(c.HTTP.Listen)
	if err != nil || port == "80" || port == "" {
		if addr.Is6() {
			return "http://[" + addr.String() + "]"
		}
		return "http://" + addr.String()
	}
	return "http://" + net.JoinHostPort(addr.String(), port)
}

// ApplyInterface fills what the interface knows: the server address and, in proxy and reservation
// mode or with DHCP off, with no subnets, the interface's subnet (reservations on it are then valid).
func (c *Config) ApplyInterface(addr netip.Addr, prefix netip.Prefix) {
	if !c.Interface.ServerIP.IsValid() {
		c.Interface.ServerIP = addr
	}
	if len(c.Subnets) == 0 && prefix.IsValid() && (c.Interface.Mode != ModeAuthoritative || !c.DHCP.On()) {
		c.Subnets = []Subnet{{CIDR: prefix}}
	}
}
