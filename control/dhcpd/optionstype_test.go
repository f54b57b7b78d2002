package dhcpd

import (
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// The reader tells a DISCOVER and a REQUEST by option 53 in the raw options field; anything
// whose type cannot be read there is none of them (it goes to a worker).
func TestOptionsType(t *testing.T) {
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
		want dhcpv4.MessageType
	}{
		{"discover", discover, dhcpv4.MessageTypeDiscover},
		{"discover after pads", padded, dhcpv4.MessageTypeDiscover},
		{"request", msg(dhcpv4.MessageTypeRequest), dhcpv4.MessageTypeRequest},
		{"release", msg(dhcpv4.MessageTypeRelease), dhcpv4.MessageTypeRelease},
		{"decline", msg(dhcpv4.MessageTypeDecline), dhcpv4.MessageTypeDecline},
		{"inform", msg(dhcpv4.MessageTypeInform), dhcpv4.MessageTypeInform},
		{"no cookie", noCookie, dhcpv4.MessageTypeNone},
		{"type not in the options field", typeInFile, dhcpv4.MessageTypeNone},
		{"type of two bytes", append(append([]byte(nil), discover[:headerLen+cookieLen]...), 53, 2, 1, 1, 255), dhcpv4.MessageTypeNone},
		{"cut inside the options", discover[:headerLen+cookieLen+1], dhcpv4.MessageTypeNone},
		{"shorter than the header", discover[:100], dhcpv4.MessageTypeNone},
		{"empty", nil, dhcpv4.MessageTypeNone},
	} {
		if got := optionsType(c.b); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
