package config

import (
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netbootd/netbootd/tftp"
)

// Defaults filled in by setDefaults.
const (
	DefaultLeaseTime   = time.Hour
	DefaultOfferHold   = 30 * time.Second
	DefaultDeclineHold = 10 * time.Minute
	DefaultWorkers     = 64
	DefaultQueue       = 4096
	// DefaultIPXEDir is Debian's ipxe package: the one iPXE directory that may be absent.
	DefaultIPXEDir     = "/usr/lib/ipxe"
	DefaultMaxDeclines = 3
	DefaultHTTPListen  = ":80"
)

// setDefaults fills every unset setting that has a default; the one place defaults live. It is
// idempotent: Parse calls it (ApplyInterface needs the mode), and Validate again for what was
// added since (the interface's subnet).
func (c *Config) setDefaults() {
	if c.Interface.Mode == "" {
		c.Interface.Mode = ModeAuthoritative
	}
	if c.DHCP.Enabled == nil {
		on := true
		c.DHCP.Enabled = &on
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultHTTPListen
	}
	if c.DHCP.OfferHold == 0 {
		c.DHCP.OfferHold = Duration(DefaultOfferHold)
	}
	if c.DHCP.DeclineHold == 0 {
		c.DHCP.DeclineHold = Duration(DefaultDeclineHold)
	}
	if c.DHCP.Workers == 0 {
		c.DHCP.Workers = DefaultWorkers
	}
	if c.DHCP.Queue == 0 {
		c.DHCP.Queue = DefaultQueue
	}
	if c.DHCP.MaxDeclinesPerMAC == 0 {
		c.DHCP.MaxDeclinesPerMAC = DefaultMaxDeclines
	}
	if st := &c.DHCP.Storm; !st.Off {
		if st.DuplicateWindow == 0 {
			st.DuplicateWindow = Duration(time.Second)
		}
		if st.PerSourceRate == 0 {
			st.PerSourceRate = 50
		}
		if st.UnknownRate == 0 {
			st.UnknownRate = 2000
		}
		if st.PerSourceBurst == 0 {
			st.PerSourceBurst = 2 * st.PerSourceRate
		}
		if st.UnknownBurst == 0 {
			st.UnknownBurst = 2 * st.UnknownRate
		}
	}
	for i := range c.Subnets {
		if c.Subnets[i].LeaseTime == 0 {
			c.Subnets[i].LeaseTime = Duration(DefaultLeaseTime)
		}
	}
	if c.TFTP.IPXEDir == "" {
		c.TFTP.IPXEDir = DefaultIPXEDir
	}
	c.setClassDefaults()
}

// Validate checks the whole configuration once the interface is known (ApplyInterface), fills
// defaults and encodes custom options. Every problem is reported, each with its file, line and
// field; components take the result as it is.
func (c *Config) Validate() error { return c.validate(true) }

// ValidateFile checks a file on its own, as `netbootd check` does: what the interface will
// supply (the server address, reservation mode's subnet) may be missing, and the rules about
// the server address wait for Validate.
func (c *Config) ValidateFile() error { return c.validate(false) }

func (c *Config) validate(ifaceKnown bool) error {
	c.setDefaults()
	// What reading refused is reported again: a configuration read with errors is not valid.
	p := &problems{source: c.Source, list: append([]problem(nil), c.readProblems...)}
	bad := c.reporter(p)
	c.validateInterface(ifaceKnown, bad)
	c.validateLinks(bad)
	c.validateDHCP(bad)
	c.validateDHCP6(ifaceKnown, bad)
	c.validateSubnets(ifaceKnown, bad)
	c.validateBoot(&c.Boot, 0, "boot", bad)
	c.validateTFTP(bad)
	c.validateReservations(bad)
	c.validateClasses(bad)
	c.validatePiFolders(bad)
	c.validateProfiles(bad)
	c.validateSyslog(bad)
	c.validateHTTP(bad)
	return p.err()
}

// report adds a problem: line is the list item's (0 for top-level settings, whose line is
// looked up), field its path, e.g. "subnets[0].pools[1]".
type report func(line int, field, format string, a ...any)

// reporter gives each problem the line its setting was written on, and stays silent about
// values that were already refused while reading (a refused MAC is not also "missing").
func (c *Config) reporter(p *problems) report {
	return func(line int, field, format string, a ...any) {
		for f := field; f != ""; f = parentPath(f) {
			if c.undecoded[f] {
				return
			}
		}
		p.add(c.lineOf(line, field), field, format, a...)
	}
}

// lineOf is the line of field (or of its nearest written parent). A list item's line is
// passed in (its Line): the file's lines are used inside it only while the item at that index
// is the one read there, not one an inventory put in its place (or none of the file).
func (c *Config) lineOf(itemLine int, field string) int {
	if i := strings.Index(field, "]"); i >= 0 && (itemLine == 0 || c.lines[field[:i+1]] != itemLine) {
		return itemLine
	}
	for f := field; f != ""; f = parentPath(f) {
		if l := c.lines[f]; l > 0 {
			return l
		}
	}
	return itemLine
}

// parentPath is "subnets[0]" for "subnets[0].cidr", "subnets" for "subnets[0]", "" at the top.
func parentPath(f string) string {
	if i := strings.LastIndexAny(f, ".["); i >= 0 {
		return f[:i]
	}
	return ""
}

func (c *Config) validateInterface(ifaceKnown bool, bad report) {
	switch c.Interface.Mode {
	case ModeAuthoritative, ModeReservation, ModeProxy:
	default:
		bad(0, "interface.mode", "%q: want authoritative, reservation or proxy", c.Interface.Mode)
	}
	if c.Interface.ServerIP.IsValid() && !c.Interface.ServerIP.Is4() {
		bad(0, "interface.server_ip", "%s is not IPv4", c.Interface.ServerIP)
	} else if !c.Interface.ServerIP.IsValid() && ifaceKnown && len(c.links) < 2 {
		bad(0, "interface.server_ip", "no IPv4 server address (set it, or give the interface one)")
	}
}

func (c *Config) validateDHCP(bad report) {
	if !c.DHCP.On() {
		// Nothing would hand these out: a pool here means the operator expects addresses from netbootd.
		for i := range c.Subnets {
			if len(c.Subnets[i].Pools) > 0 {
				bad(c.Subnets[i].Line, fmt.Sprintf("subnets[%d].pools", i), "dhcp.enabled is false: netbootd hands out no addresses (remove the pools, or enable DHCP)")
			}
		}
	}
	if c.DHCP.Workers < 1 || c.DHCP.Workers > 4096 {
		bad(0, "dhcp.workers", "%d: want 1-4096", c.DHCP.Workers)
	}
	if c.DHCP.Queue < 1 || c.DHCP.Queue > 1<<20 {
		bad(0, "dhcp.queue", "%d: want 1-1048576", c.DHCP.Queue)
	}
	if c.DHCP.OfferHold < 0 || c.DHCP.DeclineHold < 0 {
		bad(0, "dhcp", "hold times must be positive")
	}
	if c.DHCP.MaxDeclinesPerMAC < 1 || c.DHCP.MaxDeclinesPerMAC > 1024 {
		bad(0, "dhcp.max_declines_per_mac", "%d: want 1-1024", c.DHCP.MaxDeclinesPerMAC)
	}
	if c.DHCP.MaxLeasesPerCircuit < 0 {
		bad(0, "dhcp.max_leases_per_circuit", "%d: want 0 (no cap) or more", c.DHCP.MaxLeasesPerCircuit)
	}
	if st := &c.DHCP.Storm; !st.Off {
		if st.DuplicateWindow < 0 || st.DuplicateWindow.D() > time.Minute {
			bad(0, "dhcp.storm.duplicate_window", "%s: want up to 1m (clients retransmit after ~4s)", st.DuplicateWindow.D())
		}
		if st.PerSourceRate > 1e7 || st.UnknownRate > 1e7 || st.PerSourceBurst > 1e7 || st.UnknownBurst > 1e7 {
			bad(0, "dhcp.storm", "rates and bursts above 10,000,000: set off: true instead")
		}
	}
}

func (c *Config) validateSubnets(ifaceKnown bool, bad report) {
	type pool struct {
		r     Range
		where string
	}
	var pools []pool
	servers := c.serverAddrs()
	for i := range c.Subnets {
		s := &c.Subnets[i]
		f := fmt.Sprintf("subnets[%d]", i)
		if !s.CIDR.IsValid() || !s.CIDR.Addr().Is4() {
			bad(s.Line, f+".cidr", "missing or not an IPv4 prefix")
			continue
		}
		s.CIDR = s.CIDR.Masked()
		if s.LeaseTime.D() < 10*time.Second || s.LeaseTime.D() > 365*24*time.Hour {
			bad(s.Line, f+".lease_time", "%s: want 10s to 1 year", s.LeaseTime.D())
		}
		network, broadcast := s.CIDR.Addr(), lastAddr(s.CIDR)
		for j, p := range s.Pools {
			pf := fmt.Sprintf("%s.pools[%d]", f, j)
			if !s.CIDR.Contains(p.First) || !s.CIDR.Contains(p.Last) {
				bad(s.Line, pf, "%s is not inside %s", p, s.CIDR)
			}
			for _, server := range servers {
				if p.Contains(server) {
					bad(s.Line, pf, "%s contains the server's own address %s", p, server)
				}
			}
			// A /31 (RFC 3021) and a /32 have no network or broadcast address to keep free.
			if s.CIDR.Bits() <= 30 && p.Contains(network) {
				bad(s.Line, pf, "%s contains the network address %s", p, network)
			}
			if s.CIDR.Bits() <= 30 && p.Contains(broadcast) {
				bad(s.Line, pf, "%s contains the broadcast address %s", p, broadcast)
			}
			for _, q := range pools {
				if q.r.Contains(p.First) || q.r.Contains(p.Last) || p.Contains(q.r.First) {
					bad(s.Line, pf, "%s overlaps %s (%s)", p, q.r, q.where)
				}
			}
			pools = append(pools, pool{p, pf})
		}
		for j := 0; j < i; j++ {
			if c.Subnets[j].CIDR.Overlaps(s.CIDR) {
				bad(s.Line, f+".cidr", "%s overlaps subnets[%d] %s", s.CIDR, j, c.Subnets[j].CIDR)
			}
		}
		for j, a := range s.Relays {
			if !a.Is4() {
				bad(s.Line, fmt.Sprintf("%s.relays[%d]", f, j), "%s is not an IPv4 address", a)
			}
		}
		c.validateOptions(&s.Options, s.Line, f+".options", bad)
		c.validateBoot(&s.Boot, s.Line, f+".boot", bad)
	}
	// Proxy mode needs none; reservation mode, and any mode with DHCP off, takes the interface's
	// when it has none.
	if len(c.Subnets) == 0 && c.Interface.Mode != ModeProxy && c.DHCP.On() && (ifaceKnown || c.Interface.Mode == ModeAuthoritative) {
		bad(0, "subnets", "mode %s needs at least one subnet", c.Interface.Mode)
	}
}

// lastAddr is the prefix's highest address: its broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	var last [4]byte
	binary.BigEndian.PutUint32(last[:], binary.BigEndian.Uint32(a[:])|uint32(1<<(32-p.Bits())-1))
	return netip.AddrFrom4(last)
}

func (c *Config) validateTFTP(bad report) {
	t := &c.TFTP
	if t.MaxWindow < 0 || t.MaxWindow > 65535 {
		bad(0, "tftp.max_window", "%d: want 1-65535", t.MaxWindow)
	}
	if t.MaxBlockSize != 0 && (t.MaxBlockSize < tftp.MinBlksize || t.MaxBlockSize > tftp.MaxBlksize) {
		bad(0, "tftp.max_blksize", "%d: want %d-%d (RFC 2348)", t.MaxBlockSize, tftp.MinBlksize, tftp.MaxBlksize)
	}
	if t.MaxTransfers < 0 || t.MaxPerClient < 0 {
		bad(0, "tftp", "max_transfers and max_per_client must be positive")
	}
	if t.MaxUpload < 0 {
		bad(0, "tftp.max_upload", "%d: must be positive", t.MaxUpload)
	}
	if t.UploadQuota < 0 {
		bad(0, "tftp.upload_quota", "%d: must be positive", t.UploadQuota)
	}
	if t.MaxUnconfirmed < 0 || t.MaxUnconfirmedPerClient < 0 {
		bad(0, "tftp", "max_unconfirmed and max_unconfirmed_per_client must be positive")
	}
	if t.MaxTransfers > 0 && t.MaxUnconfirmed > t.MaxTransfers {
		bad(0, "tftp.max_unconfirmed", "%d: above max_transfers (%d)", t.MaxUnconfirmed, t.MaxTransfers)
	}
	checkDir(t.Root, "tftp.root", bad)
	if t.IPXEDir != DefaultIPXEDir {
		checkDir(t.IPXEDir, "tftp.ipxe_dir", bad)
	}
	if t.UploadDir == "" {
		return
	}
	if !checkDir(t.UploadDir, "tftp.upload_dir", bad) {
		return
	}
	// Uploads must never become what machines boot: no uploaded file may be served, and no
	// served directory may take new files from an upload.
	up := realPath(t.UploadDir)
	for _, served := range []struct{ field, dir string }{
		{"tftp.root", t.Root}, {"tftp.ipxe_dir", t.IPXEDir}, {"http.assets", c.HTTP.Assets},
	} {
		if served.dir == "" {
			continue
		}
		dir := realPath(served.dir)
		switch {
		case up == dir:
			bad(0, "tftp.upload_dir", "%s is %s: uploaded files would be served to machines", t.UploadDir, served.field)
		case within(up, dir):
			bad(0, "tftp.upload_dir", "%s is inside %s (%s): uploaded files would be served to machines", t.UploadDir, served.field, served.dir)
		case within(dir, up):
			bad(0, "tftp.upload_dir", "%s contains %s (%s): uploads could add files that are served to machines", t.UploadDir, served.field, served.dir)
		}
	}
}

// checkDir reports a set directory setting that is not a directory; it says whether dir is one.
func checkDir(dir, field string, bad report) bool {
	if dir == "" {
		return false
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		bad(0, field, "%s is not a directory", dir)
		return false
	}
	return true
}

// realPath is path made absolute with its symbolic links resolved, to compare directories.
func realPath(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.Clean(path)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}

// within reports whether path is strictly inside dir.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../")
}

func (c *Config) validateReservations(bad report) {
	macs := map[string]int{}
	ips := map[netip.Addr]int{}
	for i := range c.Reservations {
		r := &c.Reservations[i]
		f := fmt.Sprintf("reservations[%d]", i)
		if len(r.MAC) != 6 {
			bad(r.Line, f+".mac", "missing")
		} else if err := CheckMAC(r.MAC); err != nil {
			bad(r.Line, f+".mac", "%v", err)
		} else if j, dup := macs[r.MAC.String()]; dup {
			bad(r.Line, f+".mac", "%s is also reservations[%d]", r.MAC, j)
		} else {
			macs[r.MAC.String()] = i
		}
		if err := CheckHostname(r.Hostname); err != nil {
			bad(r.Line, f+".hostname", "%v", err)
		}
		c.validateOptions(&r.Options, r.Line, f+".options", bad)
		c.validateBoot(&r.Boot, r.Line, f+".boot", bad)
		c.validatePXE(r.PXE, r.Line, f+".pxe", bad)
		if !r.IP.IsValid() && !c.DHCP.On() {
			continue // another server gives its address: netbootd finds it by MAC (the neighbour table)
		}
		if !r.IP.IsValid() || !r.IP.Is4() {
			bad(r.Line, f+".ip", "missing or not IPv4")
			continue
		}
		if j, dup := ips[r.IP]; dup {
			bad(r.Line, f+".ip", "%s is also reservations[%d]", r.IP, j)
		}
		ips[r.IP] = i
		if slices.Contains(c.serverAddrs(), r.IP) {
			bad(r.Line, f+".ip", "%s is the server's own address", r.IP)
		}
		if c.SubnetOf(r.IP) == nil && c.Interface.Mode != ModeProxy && c.DHCP.On() { // else ip only identifies the machine
			bad(r.Line, f+".ip", "%s is in no configured subnet", r.IP)
		}
	}
}

// CheckMAC refuses the two MACs no machine has: all zeros and the broadcast address. Validate
// applies it; so does an inventory to each object, to skip a bad one rather than fail them all.
func CheckMAC(m MAC) error {
	switch m.String() {
	case "00:00:00:00:00:00":
		return errors.New("00:00:00:00:00:00 is no machine's address")
	case "ff:ff:ff:ff:ff:ff":
		return errors.New("ff:ff:ff:ff:ff:ff is the broadcast address, no machine's")
	}
	return nil
}

// CheckHostname refuses what would break option 12, a log line or a template: spaces, control
// characters, more than 255 bytes. Validate applies it; so does an inventory, like CheckMAC.
func CheckHostname(h string) error {
	if len(h) > 255 {
		return fmt.Errorf("%d bytes: want at most 255", len(h))
	}
	for _, r := range h {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%q: no spaces or control characters in a host name", h)
		}
	}
	return nil
}

func (c *Config) validateSyslog(bad report) {
	if _, err := regexp.Compile(c.Syslog.BootedPattern); err != nil {
		bad(0, "syslog.booted_pattern", "%v", err)
	}
	if c.Syslog.MaxPerSecond < 0 {
		bad(0, "syslog.max_per_second", "%d: must be positive", c.Syslog.MaxPerSecond)
	}
	if c.Syslog.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Syslog.Listen); err != nil {
			bad(0, "syslog.listen", "%q: want host:port, e.g. 10.10.0.1:514", c.Syslog.Listen)
		}
	}
}

func (c *Config) validateHTTP(bad report) {
	checkDir(c.HTTP.Assets, "http.assets", bad)
	if c.HTTP.MgmtListen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.MgmtListen); err != nil {
			bad(0, "http.mgmt_listen", "%q: want host:port, e.g. 127.0.0.1:9180", c.HTTP.MgmtListen)
		}
	}
	if c.HTTP.MaxDownloads < 0 {
		bad(0, "http.max_downloads", "%d: want 0 (the default) or more", c.HTTP.MaxDownloads)
	}
	if c.HTTP.MaxDownloadsPerClient < 0 {
		bad(0, "http.max_downloads_per_client", "%d: want 0 (the default) or more", c.HTTP.MaxDownloadsPerClient)
	}
	if c.HTTP.BaseURL != "" {
		if u, err := url.Parse(c.HTTP.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(0, "http.base_url", "%q: want http://host[:port]", c.HTTP.BaseURL)
		}
		c.HTTP.BaseURL = strings.TrimRight(c.HTTP.BaseURL, "/")
	}
	validateHTTPTLS(&c.HTTP.TLS, bad)
}

// validateHTTPTLS wants all three keys or none, and a pair that loads now: a typo in a path is
// refused at start, not found by the first machine's handshake.
func validateHTTPTLS(t *HTTPTLS, bad report) {
	if *t == (HTTPTLS{}) {
		return
	}
	if _, _, err := net.SplitHostPort(t.Listen); err != nil {
		bad(0, "http.tls.listen", "%q: want host:port, e.g. :443", t.Listen)
	}
	if t.Cert == "" || t.Key == "" {
		bad(0, "http.tls", "cert and key are both required")
		return
	}
	if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
		bad(0, "http.tls.cert", "%s with key %s: %v", t.Cert, t.Key, err)
	}
}

func (c *Config) validateOptions(o *Options, line int, field string, bad report) {
	for i := range o.Custom {
		opt := &o.Custom[i]
		f := fmt.Sprintf("%s.custom[%d]", field, i)
		l := opt.Line
		if l == 0 {
			l = line
		}
		if opt.Code == 0 || opt.Code == 255 || opt.Code == 53 || opt.Code == 54 || opt.Code == 82 {
			bad(l, f+".code", "%d cannot be set by configuration", opt.Code)
			continue
		}
		data, err := EncodeOption(opt.Type, opt.Value)
		if err != nil {
			bad(l, f+".value", "%v", err)
			continue
		}
		opt.Data = data
	}
}

func (c *Config) validateBoot(b *Boot, line int, field string, bad report) {
	if b.NextServer.IsValid() && !b.NextServer.Is4() {
		bad(line, field+".next_server", "not IPv4")
	}
	for name, v := range map[string]string{"bios": b.BIOS, "efi32": b.EFI32, "efi_x64": b.EFIx64,
		"efi_arm32": b.ARM32, "efi_arm64": b.ARM64, "http_boot": b.HTTPBoot, "ipxe_script": b.IPXEScript} {
		if len(v) > 127 || strings.ContainsRune(v, 0) {
			bad(line, field+"."+name, "boot file name must be under 128 bytes without NUL")
		}
	}
}

// EncodeOption turns a typed value into option bytes.
func EncodeOption(typ, value string) ([]byte, error) {
	var out []byte
	switch typ {
	case "ip", "ips":
		for _, s := range strings.Split(value, ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("%q is not an IPv4 address", s)
			}
			b := a.As4()
			out = append(out, b[:]...)
		}
		if typ == "ip" && len(out) != 4 {
			return nil, fmt.Errorf("type ip takes one address; use ips for a list")
		}
	case "string":
		out = []byte(value)
	case "uint8", "uint16", "uint32":
		bits, _ := strconv.Atoi(typ[4:])
		n, err := strconv.ParseUint(value, 0, bits)
		if err != nil {
			return nil, fmt.Errorf("%q is not a %s", value, typ)
		}
		out = binary.BigEndian.AppendUint32(nil, uint32(n))[4-bits/8:]
	case "bool":
		v, err := strconv.ParseBool(value)
		if err != nil {
			return nil, fmt.Errorf("%q is not a bool", value)
		}
		out = []byte{0}
		if v {
			out[0] = 1
		}
	case "hex":
		b, err := hex.DecodeString(strings.NewReplacer(":", "", " ", "").Replace(value))
		if err != nil {
			return nil, fmt.Errorf("%q is not hex", value)
		}
		out = b
	default:
		return nil, fmt.Errorf("type %q: want ip, ips, string, uint8, uint16, uint32, bool or hex", typ)
	}
	if len(out) == 0 || len(out) > 255 {
		return nil, fmt.Errorf("encoded value is %d bytes: want 1-255", len(out))
	}
	return out, nil
}

// SubnetOf returns the subnet containing ip, or nil.
func (c *Config) SubnetOf(ip netip.Addr) *Subnet {
	for i := range c.Subnets {
		if c.Subnets[i].CIDR.Contains(ip) {
			return &c.Subnets[i]
		}
	}
	return nil
}

// SubnetForRelay returns the subnet a relay's giaddr selects: the one containing it, or the
// one listing it in relay_addresses.
func (c *Config) SubnetForRelay(giaddr netip.Addr) *Subnet {
	if s := c.SubnetOf(giaddr); s != nil {
		return s
	}
	for i := range c.Subnets {
		for _, a := range c.Subnets[i].RelayAddresses {
			if a == giaddr {
				return &c.Subnets[i]
			}
		}
	}
	return nil
}

// problems collects every error found in a configuration, each as "FILE:LINE: FIELD: MESSAGE"
// (the parts not known left out), to be reported in the order of the file.
type problems struct {
	source string
	list   []problem
}

type problem struct {
	line int
	text string
}

func (p *problems) add(line int, field, format string, a ...any) {
	var parts []string
	switch {
	case p.source != "" && line > 0:
		parts = append(parts, fmt.Sprintf("%s:%d", p.source, line))
	case line > 0:
		parts = append(parts, fmt.Sprintf("line %d", line))
	case p.source != "":
		parts = append(parts, p.source)
	}
	if field != "" {
		parts = append(parts, field)
	}
	p.list = append(p.list, problem{line, strings.Join(append(parts, fmt.Sprintf(format, a...)), ": ")})
}

// err joins the problems by line; those without one (a missing section) come last.
func (p *problems) err() error {
	sort.SliceStable(p.list, func(i, j int) bool {
		a, b := p.list[i].line, p.list[j].line
		return a > 0 && (b == 0 || a < b)
	})
	errs := make([]error, len(p.list))
	for i, q := range p.list {
		errs[i] = errors.New(q.text)
	}
	return errors.Join(errs...)
}
