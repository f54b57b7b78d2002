package dhcpd

import (
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Only a DISCOVER is served by the reader itself; every other type, and anything whose type
// cannot be read from the options field, goes to a worker (which may wait on the lease store).
func TestNeverWaitsOnlyForDiscover(t *testing.T) {
	msg := func(mt dhcpv4.MessageType) []byte {
		m, err := dhcpv4.New(dhcpv4.WithMessageType(mt), dhcpv4.WithHwAddr(macUnknown))
		if err != nil {
			t.Fatal(err)
		}
		return m.ToBytes()
	}
	discover := msg(dhcpv4.MessageTypeDiscover)
	padded := append(append(append([]byte(nil), discover[:headerLen+cookieLen]...), 0, 0, 0), discover[headerLen+cookieLen:]...)
	noCookie := append([]byte(nil), discover...)
	noCookie[headerLen] = 0
	typeInFile := append([]byte(nil), discover[:headerLen+cookieLen]...)
	typeInFile = append(typeInFile, 52, 1, 1, 255) // overload: option 53 would be in the file field
	for _, c := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"discover", discover, true},
		{"discover after pads", padded, true},
		{"request", msg(dhcpv4.MessageTypeRequest), false},
		{"release", msg(dhcpv4.MessageTypeRelease), false},
		{"decline", msg(dhcpv4.MessageTypeDecline), false},
		{"inform", msg(dhcpv4.MessageTypeInform), false},
		{"no cookie", noCookie, false},
		{"type not in the options field", typeInFile, false},
		{"cut inside the options", discover[:headerLen+cookieLen+1], false},
		{"shorter than the header", discover[:100], false},
		{"empty", nil, false},
	} {
		if got := neverWaits(c.b); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
