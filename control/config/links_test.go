package config

import (
	"net/netip"
	"strings"
	"testing"
)

func testLink(name, addr string) Link {
	p := netip.MustParsePrefix(addr)
	return Link{Name: name, Addr: p.Addr(), Prefix: p.Masked()}
}

// Several interfaces: each answers from its own address the subnet containing it; what would
// leave that ambiguous is refused with its line and field, the rest is accepted.
func TestMultiIfLinks(t *testing.T) {
	twoSubnets := "subnets:\n  - cidr: 10.1.0.0/24\n    pools: [\"10.1.0.100-10.1.0.200\"]\n  - cidr: 10.2.0.0/24\n    pools: [\"10.2.0.100-10.2.0.200\"]\n"
	eth0, eth1 := testLink("eth0", "10.1.0.1/24"), testLink("eth1", "10.2.0.1/24")
	for _, tc := range []struct {
		name, yaml string
		links      []Link
		want       string // "" = accepted
	}{
		{"two interfaces, a subnet each", "interface: {mode: authoritative}\n" + twoSubnets, []Link{eth0, eth1}, ""},
		{"one server address for several interfaces", "interface: {mode: authoritative, server_ip: 10.1.0.1}\n" + twoSubnets, []Link{eth0, eth1},
			"line 1: interface.server_ip: netbootd serves 2 interfaces (eth0, eth1): each answers from its own address; remove server_ip"},
		{"an interface named twice", "interface: {mode: authoritative}\n" + twoSubnets, []Link{eth0, eth0},
			"interface eth0 is named twice"},
		{"two interfaces on one subnet", "interface: {mode: authoritative}\n" + twoSubnets, []Link{eth0, testLink("eth1", "10.1.0.2/24")},
			"interfaces eth0 (10.1.0.0/24) and eth1 (10.1.0.0/24) are on one subnet: a client there would be answered by both"},
		{"one subnet holding two interfaces' addresses", "interface: {mode: authoritative}\nsubnets:\n  - cidr: 10.1.0.0/16\n", []Link{eth0, testLink("eth1", "10.1.128.1/17")},
			"line 3: subnets[0].cidr: 10.1.0.0/16 contains the addresses of eth0 and eth1: which interface serves it is ambiguous"},
		{"an interface in no subnet", "interface: {mode: authoritative}\n" + twoSubnets, []Link{eth0, eth1, testLink("eth2", "10.3.0.1/24")},
			"subnets: no subnet contains eth2's address 10.3.0.1: its clients would get no answer (add its subnet)"},
		{"a pool holding another interface's address", "interface: {mode: authoritative}\nsubnets:\n  - cidr: 10.1.0.0/24\n  - cidr: 10.2.0.0/24\n    pools: [\"10.2.0.1-10.2.0.50\"]\n", []Link{eth0, eth1},
			"line 5: subnets[1].pools[0]: 10.2.0.1-10.2.0.50 contains the server's own address 10.2.0.1"},
		{"a reservation on another interface's address", "interface: {mode: authoritative}\n" + twoSubnets + "reservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.2.0.1}\n", []Link{eth0, eth1},
			"line 8: reservations[0].ip: 10.2.0.1 is the server's own address"},
		{"proxy mode needs no subnets", "interface: {mode: proxy}\n", []Link{eth0, eth1}, ""},
		{"DHCPv6 on several interfaces", "interface: {mode: proxy}\ndhcp6:\n  enabled: true\n", []Link{eth0, eth1},
			"line 3: dhcp6.enabled: DHCPv6 serves one interface"},
		{"reservation mode takes each interface's subnet", "interface: {mode: reservation}\nreservations:\n  - {mac: \"02:00:00:00:00:01\", ip: 10.1.0.5}\n  - {mac: \"02:00:00:00:00:02\", ip: 10.2.0.5}\n", []Link{eth0, eth1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			c.ApplyLinks(tc.links)
			err = c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("accepted, want %s:\n%s", tc.want, tc.yaml)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// Each interface's configuration names its own address: server identifier, next-server and
// every URL; http.base_url, when set, is the operator's choice for all of them.
func TestMultiIfForLink(t *testing.T) {
	c, err := Parse([]byte("interface: {mode: reservation}\nhttp: {listen: \":8080\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.ApplyLinks([]Link{testLink("eth0", "10.1.0.1/24"), testLink("eth0.100", "10.2.0.1/24")})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"http://10.1.0.1:8080", "http://10.2.0.1:8080"} {
		l := c.ForLink(i)
		if got := l.BaseURL(); got != want {
			t.Errorf("ForLink(%d).BaseURL() = %q, want %q", i, got, want)
		}
		if got := l.SubnetOf(l.Interface.ServerIP); got == nil || !got.CIDR.Contains(l.Interface.ServerIP) {
			t.Errorf("ForLink(%d): no subnet of its own address %s (subnets %v)", i, l.Interface.ServerIP, c.Subnets)
		}
	}
	if c.Interface.ServerIP.IsValid() {
		t.Errorf("ApplyLinks set one server address %s for both interfaces", c.Interface.ServerIP)
	}
	c.HTTP.BaseURL = "http://boot.example"
	if got := c.ForLink(1).BaseURL(); got != "http://boot.example" {
		t.Errorf("with http.base_url, ForLink(1).BaseURL() = %q", got)
	}
	// One interface: as ApplyInterface, interface.server_ip wins over the interface's address.
	one, err := Parse([]byte("interface: {mode: reservation, server_ip: 10.1.0.9}\n"))
	if err != nil {
		t.Fatal(err)
	}
	one.ApplyLinks([]Link{testLink("eth0", "10.1.0.1/24")})
	if err := one.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := one.ForLink(0).Interface.ServerIP.String(); got != "10.1.0.9" {
		t.Errorf("one interface: ForLink(0) answers from %s, want interface.server_ip 10.1.0.9", got)
	}
}
