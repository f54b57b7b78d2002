package config

import (
	"net/netip"
	"strings"
	"testing"
)

func TestDHCPEnabledDefaultsOn(t *testing.T) {
	c, err := Parse([]byte("interface: {mode: proxy, server_ip: 10.0.0.1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !c.DHCP.On() || c.DHCP.Enabled == nil || !*c.DHCP.Enabled {
		t.Errorf("dhcp.enabled unset: On() = %v, Enabled = %v; want on", c.DHCP.On(), c.DHCP.Enabled)
	}
}

// With DHCP off no subnet is needed: the interface's is taken, so reservations on it are valid,
// and `netbootd check` accepts the file alone.
func TestDHCPOffNeedsNoSubnet(t *testing.T) {
	const file = "dhcp: {enabled: false}\nreservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.0.0.5, hostname: n1}\n"
	c, err := Parse([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ValidateFile(); err != nil {
		t.Fatalf("check: %v", err)
	}
	c, _ = Parse([]byte(file))
	c.ApplyInterface(netip.MustParseAddr("10.0.0.1"), netip.MustParsePrefix("10.0.0.0/24"))
	if err := c.Validate(); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if c.DHCP.On() {
		t.Error("dhcp.enabled: false reads as on")
	}
	if len(c.Subnets) != 1 || c.Subnets[0].CIDR.String() != "10.0.0.0/24" {
		t.Errorf("subnets %v, want the interface's", c.Subnets)
	}
}

func TestDHCPOffRefusesPools(t *testing.T) {
	c, err := Parse([]byte("interface: {server_ip: 10.0.0.1}\ndhcp: {enabled: false}\nsubnets:\n  - cidr: 10.0.0.0/24\n    pools: [\"10.0.0.100-10.0.0.199\"]\n"))
	if err == nil {
		err = c.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), "line 5: subnets[0].pools: dhcp.enabled is false") {
		t.Errorf("error %v, want subnets[0].pools refused at line 5", err)
	}
}

func TestBaseURL(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"interface: {mode: proxy, server_ip: 10.0.0.1}\n", "http://10.0.0.1"},
		{"interface: {mode: proxy, server_ip: 10.0.0.1}\nhttp: {listen: \":80\"}\n", "http://10.0.0.1"},
		{"interface: {mode: proxy, server_ip: 10.0.0.1}\nhttp: {listen: \"0.0.0.0:8080\"}\n", "http://10.0.0.1:8080"},
		{"interface: {mode: proxy, server_ip: 10.0.0.1}\nhttp: {listen: \":8080\", base_url: \"https://boot.example:8443/\"}\n", "https://boot.example:8443"},
	} {
		c, err := Parse([]byte(tc.yaml))
		if err == nil {
			err = c.Validate()
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if got := c.BaseURL(); got != tc.want {
			t.Errorf("%sBaseURL() = %q, want %q", tc.yaml, got, tc.want)
		}
	}
}

// URLAt names the address it is given, IPv6 in brackets, with http.listen's port, and ignores
// http.base_url (DHCPv6 answers IPv6 clients with it).
func TestURLAt(t *testing.T) {
	v6 := netip.MustParseAddr("fd00:10::1")
	for _, tc := range []struct {
		listen, baseURL string
		addr            netip.Addr
		want            string
	}{
		{":80", "", v6, "http://[fd00:10::1]"},
		{"", "", v6, "http://[fd00:10::1]"},
		{":8080", "", v6, "http://[fd00:10::1]:8080"},
		{":8080", "https://boot.example/", v6, "http://[fd00:10::1]:8080"},
		{":8080", "", netip.MustParseAddr("10.0.0.1"), "http://10.0.0.1:8080"},
		{":8080", "", netip.Addr{}, ""},
	} {
		c := &Config{HTTP: HTTP{Listen: tc.listen, BaseURL: tc.baseURL}}
		if got := c.URLAt(tc.addr); got != tc.want {
			t.Errorf("listen %q base_url %q: URLAt(%v) = %q, want %q", tc.listen, tc.baseURL, tc.addr, got, tc.want)
		}
	}
}

// A reservation without ip: refused while netbootd gives addresses, accepted with DHCP off
// (another server gives the address; netbootd finds the machine by MAC).
func TestReservationWithoutIP(t *testing.T) {
	const res = "reservations:\n  - {mac: \"02:00:00:00:00:01\", hostname: n1}\n  - {mac: \"02:00:00:00:00:02\", hostname: n2}\n"
	for _, tc := range []struct {
		dhcp, want string
	}{
		{"dhcp: {enabled: true}\n", "reservations[0].ip: missing or not IPv4"},
		{"dhcp: {enabled: false}\n", ""},
	} {
		c, err := Parse([]byte("interface: {server_ip: 10.0.0.1}\n" + tc.dhcp + res))
		if err == nil {
			c.ApplyInterface(netip.MustParseAddr("10.0.0.1"), netip.MustParsePrefix("10.0.0.0/24"))
			err = c.Validate()
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.dhcp, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.dhcp, err, tc.want)
		}
	}
}
