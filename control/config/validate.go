package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/netbootd/netbootd/tftp"
)

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
	if t := c.DHCP.ReuseThreshold; t != nil && (*t < 0 || *t > 99) {
		bad(0, "dhcp.reuse_threshold", "%d: want 0-99 (percent of the lease time)", *t)
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
