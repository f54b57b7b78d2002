package profile

import (
	"net/netip"
	"testing"
)

func TestReservedAtAndBaseURL(t *testing.T) {
	r, err := New(Config{Conf: load(t, selection), BaseURL: "http://203.0.113.7:8443/"})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := r.ReservedAt(netip.MustParseAddr("10.10.0.12")); !ok || got.String() != "52:54:00:00:00:02" {
		t.Errorf("ReservedAt(10.10.0.12) = %v %v, want node02", got, ok)
	}
	if got, ok := r.ReservedAt(netip.MustParseAddr("::ffff:10.10.0.11")); !ok || got.String() != "52:54:00:00:00:01" {
		t.Errorf("ReservedAt(IPv4-mapped 10.10.0.11) = %v %v, want node01", got, ok)
	}
	if _, ok := r.ReservedAt(netip.MustParseAddr("10.10.0.100")); ok {
		t.Error("ReservedAt(a pool address) found a reservation")
	}
	if got := r.BaseURL(); got != "http://203.0.113.7:8443" {
		t.Errorf("BaseURL() = %q", got)
	}
	var none *Resolver
	if _, ok := none.ReservedAt(netip.MustParseAddr("10.10.0.11")); ok || none.BaseURL() != "" {
		t.Error("a nil resolver knows something")
	}
}
