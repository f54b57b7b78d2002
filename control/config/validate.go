package config

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults filled in by Validate.
const (
	DefaultLeaseTime   = time.Hour
	DefaultOfferHold   = 30 * time.Second
	DefaultDeclineHold = 10 * time.Minute
	DefaultWorkers     = 64
	DefaultQueue       = 4096
)

// Validate checks the whole configuration, fills defaults and encodes custom options. Every
// problem is reported, each with its line and field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(line int, field, format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		if line > 0 {
			errs = append(errs, fmt.Errorf("line %d: %s: %s", line, field, msg))
		} else {
			errs = append(errs, fmt.Errorf("%s: %s", field, msg))
		}
	}

	switch c.Interface.Mode {
	case ModeAuthoritative, ModeReservation, ModeProxy:
	default:
		bad(0, "interface.mode", "%q: want authoritative, reservation or proxy", c.Interface.Mode)
	}
	if !c.Interface.ServerIP.IsValid() || !c.Interface.ServerIP.Is4() {
		bad(0, "interface.server_ip", "no IPv4 server address (set it, or give the interface one)")
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
	if c.DHCP.Workers < 1 || c.DHCP.Workers > 4096 {
		bad(0, "dhcp.workers", "%d: want 1-4096", c.DHCP.Workers)
	}
	if c.DHCP.Queue < 1 || c.DHCP.Queue > 1<<20 {
		bad(0, "dhcp.queue", "%d: want 1-1048576", c.DHCP.Queue)
	}
	if c.DHCP.OfferHold < 0 || c.DHCP.DeclineHold < 0 {
		bad(0, "dhcp", "hold times must be positive")
	}
	if c.DHCP.MaxLeasesPerCircuit < 0 {
		bad(0, "dhcp.max_leases_per_circuit", "%d: want 0 (no cap) or more", c.DHCP.MaxLeasesPerCircuit)
	}
	if st := &c.DHCP.Storm; !st.Off {
		if st.DuplicateWindow == 0 {
			st.DuplicateWindow = Duration(time.Second)
		}
		if st.DuplicateWindow < 0 || st.DuplicateWindow.D() > time.Minute {
			bad(0, "dhcp.storm.duplicate_window", "%s: want up to 1m (clients retransmit after ~4s)", st.DuplicateWindow.D())
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
		if st.PerSourceRate > 1e7 || st.UnknownRate > 1e7 || st.PerSourceBurst > 1e7 || st.UnknownBurst > 1e7 {
			bad(0, "dhcp.storm", "rates and bursts above 10,000,000: set off: true instead")
		}
	}

	var pools []struct {
		r     Range
		where string
	}
	for i := range c.Subnets {
		s := &c.Subnets[i]
		f := fmt.Sprintf("subnets[%d]", i)
		if !s.CIDR.IsValid() || !s.CIDR.Addr().Is4() {
			bad(s.Line, f+".cidr", "missing or not an IPv4 prefix")
			continue
		}
		s.CIDR = s.CIDR.Masked()
		if s.LeaseTime == 0 {
			s.LeaseTime = Duration(DefaultLeaseTime)
		}
		if s.LeaseTime.D() < 10*time.Second || s.LeaseTime.D() > 365*24*time.Hour {
			bad(s.Line, f+".lease_time", "%s: want 10s to 1 year", s.LeaseTime.D())
		}
		for j, p := range s.Pools {
			if !s.CIDR.Contains(p.First) || !s.CIDR.Contains(p.Last) {
				bad(s.Line, fmt.Sprintf("%s.pools[%d]", f, j), "%s is not inside %s", p, s.CIDR)
			}
			for _, q := range pools {
				if q.r.Contains(p.First) || q.r.Contains(p.Last) || p.Contains(q.r.First) {
					bad(s.Line, fmt.Sprintf("%s.pools[%d]", f, j), "%s overlaps %s (%s)", p, q.r, q.where)
				}
			}
			pools = append(pools, struct {
				r     Range
				where string
			}{p, fmt.Sprintf("%s.pools[%d]", f, j)})
		}
		for j := 0; j < i; j++ {
			if c.Subnets[j].CIDR.Overlaps(s.CIDR) {
				bad(s.Line, f+".cidr", "%s overlaps subnets[%d] %s", s.CIDR, j, c.Subnets[j].CIDR)
			}
		}
		c.validateOptions(&s.Options, s.Line, f+".options", bad)
		c.validateBoot(&s.Boot, s.Line, f+".boot", bad)
	}
	if c.Interface.Mode != ModeProxy && len(c.Subnets) == 0 {
		bad(0, "subnets", "mode %s needs at least one subnet", c.Interface.Mode)
	}
	c.validateBoot(&c.Boot, 0, "boot", bad)
	if c.TFTP.IPXEDir == "" {
		c.TFTP.IPXEDir = "/usr/lib/ipxe"
	}
	if c.TFTP.MaxWindow < 0 || c.TFTP.MaxWindow > 65535 {
		bad(0, "tftp.max_window", "%d: want 1-65535", c.TFTP.MaxWindow)
	}
	if c.TFTP.MaxBlockSize != 0 && (c.TFTP.MaxBlockSize < 512 || c.TFTP.MaxBlockSize > 65464) {
		bad(0, "tftp.max_blksize", "%d: want 512-65464", c.TFTP.MaxBlockSize)
	}
	if c.TFTP.MaxTransfers < 0 || c.TFTP.MaxPerClient < 0 {
		bad(0, "tftp", "max_transfers and max_per_client must be positive")
	}
	if c.TFTP.UploadDir != "" {
		if st, err := os.Stat(c.TFTP.UploadDir); err != nil || !st.IsDir() {
			bad(0, "tftp.upload_dir", "%s is not a directory", c.TFTP.UploadDir)
		}
	}
	if c.TFTP.MaxUpload < 0 {
		bad(0, "tftp.max_upload", "%d: must be positive", c.TFTP.MaxUpload)
	}
	if c.TFTP.Root != "" {
		if st, err := os.Stat(c.TFTP.Root); err != nil || !st.IsDir() {
			bad(0, "tftp.root", "%s is not a directory", c.TFTP.Root)
		}
	}

	macs := map[string]int{}
	ips := map[netip.Addr]int{}
	for i := range c.Reservations {
		r := &c.Reservations[i]
		f := fmt.Sprintf("reservations[%d]", i)
		if len(r.MAC) != 6 {
			bad(r.Line, f+".mac", "missing")
		} else if j, dup := macs[r.MAC.String()]; dup {
			bad(r.Line, f+".mac", "%s is also reservations[%d]", r.MAC, j)
		} else {
			macs[r.MAC.String()] = i
		}
		if !r.IP.IsValid() || !r.IP.Is4() {
			bad(r.Line, f+".ip", "missing or not IPv4")
			continue
		}
		if j, dup := ips[r.IP]; dup {
			bad(r.Line, f+".ip", "%s is also reservations[%d]", r.IP, j)
		}
		ips[r.IP] = i
		if c.SubnetOf(r.IP) == nil && c.Interface.Mode != ModeProxy {
			bad(r.Line, f+".ip", "%s is in no configured subnet", r.IP)
		}
		if strings.ContainsAny(r.Hostname, " \t\x00") || len(r.Hostname) > 255 {
			bad(r.Line, f+".hostname", "%q is not a host name", r.Hostname)
		}
		c.validateOptions(&r.Options, r.Line, f+".options", bad)
		c.validateBoot(&r.Boot, r.Line, f+".boot", bad)
	}
	c.validateProfiles(bad)
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
	if c.HTTP.Assets != "" {
		if st, err := os.Stat(c.HTTP.Assets); err != nil || !st.IsDir() {
			bad(0, "http.assets", "%s is not a directory", c.HTTP.Assets)
		}
	}
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
	return errors.Join(errs...)
}

func (c *Config) validateOptions(o *Options, line int, field string, bad func(int, string, string, ...any)) {
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

func (c *Config) validateBoot(b *Boot, line int, field string, bad func(int, string, string, ...any)) {
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
