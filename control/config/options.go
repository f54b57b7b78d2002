package config

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// validateOptions checks a subnet's or reservation's custom options and encodes their values.
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
