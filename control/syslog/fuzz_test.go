package syslog

import (
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzParse: whatever arrives, Parse returns, within bounds, with clean strings, and the
// recorded detail stays within MaxDetail. Seeds live in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m := Parse(b)
		if m.Facility < 0 || m.Facility > 23 || m.Severity < 0 || m.Severity > 7 {
			t.Fatalf("facility %d severity %d out of range", m.Facility, m.Severity)
		}
		if m.Format != FormatRaw && m.Format != FormatRFC3164 && m.Format != FormatRFC5424 {
			t.Fatalf("format %d", m.Format)
		}
		for _, f := range []struct {
			name, s string
			max     int
		}{
			{"hostname", m.Hostname, MaxHostname},
			{"app", m.App, MaxApp},
			{"procid", m.ProcID, MaxProcID},
			{"msgid", m.MsgID, MaxMsgID},
			{"text", m.Text, MaxText},
		} {
			if len(f.s) > f.max {
				t.Fatalf("%s is %d bytes, more than %d", f.name, len(f.s), f.max)
			}
			if !utf8.ValidString(f.s) {
				t.Fatalf("%s is not valid UTF-8: %q", f.name, f.s)
			}
			for _, r := range f.s {
				if unicode.IsControl(r) {
					t.Fatalf("%s holds control character %U: %q", f.name, r, f.s)
				}
			}
		}
		if len(m.Text) > len(b)*3 { // U+FFFD per invalid byte at most
			t.Fatalf("text of %d bytes from %d", len(m.Text), len(b))
		}
		if d := cut(m.String(), MaxDetail); len(d) > MaxDetail || !utf8.ValidString(d) {
			t.Fatalf("detail %q", d)
		}
	})
}
