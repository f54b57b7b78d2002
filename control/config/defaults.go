package config

import "time"

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
	// DefaultReuseThreshold is ISC dhcpd's default dhcp-cache-threshold, in percent.
	DefaultReuseThreshold = 25
	DefaultHTTPListen     = ":80"
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
	if c.DHCP.ReuseThreshold == nil {
		v := DefaultReuseThreshold
		c.DHCP.ReuseThreshold = &v
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
