package syslog

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	long := strings.Repeat("x", 10<<10)
	for _, tc := range []struct {
		name string
		in   string
		want Message
	}{
		{"3164 full (RFC 3164 §5.4)", "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
			Message{Format: FormatRFC3164, Facility: 4, Severity: 2, Hostname: "mymachine", App: "su", Text: "'su root' failed for lonvick on /dev/pts/8"}},
		{"3164 padded day, pid", "<13>Jan  2 03:04:05 node-1.rack sshd[123]: Accepted publickey\n",
			Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Hostname: "node-1.rack", App: "sshd", ProcID: "123", Text: "Accepted publickey"}},
		{"3164 no host (glibc syslog, busybox syslogd)", "<27>Jan  2 03:04:05 bbtest: hello busybox\n",
			Message{Format: FormatRFC3164, Facility: 3, Severity: 3, App: "bbtest", Text: "hello busybox"}},
		{"3164 unpadded day, fraction", "<14>Feb 9 03:04:05.123 10.0.0.2 app[7]: x",
			Message{Format: FormatRFC3164, Facility: 1, Severity: 6, Hostname: "10.0.0.2", App: "app", ProcID: "7", Text: "x"}},
		{"3164 no timestamp, no host", "<6>kernel: [    1.234567] Linux version 6.1.0",
			Message{Format: FormatRFC3164, Facility: 0, Severity: 6, App: "kernel", Text: "[    1.234567] Linux version 6.1.0"}},
		{"3164 no tag", "<14>just a message",
			Message{Format: FormatRFC3164, Facility: 1, Severity: 6, Text: "just a message"}},
		{"3164 timestamp, no tag: no host either", "<14>Jan  2 03:04:05 just words here",
			Message{Format: FormatRFC3164, Facility: 1, Severity: 6, Text: "just words here"}},
		{"3164 RFC 3339 timestamp (rsyslog forward format)", "<30>2024-01-02T03:04:05.123456+00:00 node1 systemd[1]: Started foo.service.",
			Message{Format: FormatRFC3164, Facility: 3, Severity: 6, Hostname: "node1", App: "systemd", ProcID: "1", Text: "Started foo.service."}},
		{"3164 not a month", "<14>Foo  2 03:04:05 x: y",
			Message{Format: FormatRFC3164, Facility: 1, Severity: 6, Text: "Foo  2 03:04:05 x: y"}},
		{"3164 tag with colon inside is text", "<14>http://x: y",
			Message{Format: FormatRFC3164, Facility: 1, Severity: 6, Text: "http://x: y"}},
		{"5424 with SD (RFC 5424 §6.5)", `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event log entry...`,
			Message{Format: FormatRFC5424, Facility: 20, Severity: 5, Hostname: "mymachine.example.com", App: "evntslog", MsgID: "ID47", Text: "An application event log entry..."}},
		{"5424 two SD elements, escapes, BOM", "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - [a b=\"x\\]y\"][c d=\"e\\\"]\"] \xEF\xBB\xBFhello",
			Message{Format: FormatRFC5424, Facility: 20, Severity: 5, Hostname: "192.0.2.1", App: "myproc", ProcID: "8710", Text: "hello"}},
		{"5424 without SD", "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed",
			Message{Format: FormatRFC5424, Facility: 4, Severity: 2, Hostname: "mymachine.example.com", App: "su", MsgID: "ID47", Text: "'su root' failed"}},
		{"5424 all nil, no MSG", "<13>1 - - - - - -",
			Message{Format: FormatRFC5424, Facility: 1, Severity: 5}},
		{"5424 header cut short", "<13>1 - host",
			Message{Format: FormatRFC5424, Facility: 1, Severity: 5, Hostname: "host"}},
		{"5424 unterminated SD kept as text", `<13>1 - h a - - [x y="z`,
			Message{Format: FormatRFC5424, Facility: 1, Severity: 5, Hostname: "h", App: "a", Text: `[x y="z`}},
		{"\"1 \" that is not 5424", "<13>1 apple",
			Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Text: "1 apple"}},
		{"garbage", "hello\x01 world\x7f\n",
			Message{Format: FormatRaw, Facility: 1, Severity: 5, Text: "hello world"}},
		{"empty", "", Message{Format: FormatRaw, Facility: 1, Severity: 5}},
		{"only PRI", "<0>", Message{Format: FormatRFC3164}},
		{"PRI too large", "<192>x", Message{Format: FormatRaw, Facility: 1, Severity: 5, Text: "<192>x"}},
		{"PRI not a number", "<abc>x", Message{Format: FormatRaw, Facility: 1, Severity: 5, Text: "<abc>x"}},
		{"PRI too long", "<0013>x", Message{Format: FormatRaw, Facility: 1, Severity: 5, Text: "<0013>x"}},
		{"PRI empty", "<>x", Message{Format: FormatRaw, Facility: 1, Severity: 5, Text: "<>x"}},
		{"NUL bytes", "\x00<13>kernel: a\x00b\x00\x00",
			Message{Format: FormatRFC3164, Facility: 1, Severity: 5, App: "kernel", Text: "ab"}},
		{"invalid UTF-8", "<13>app: \xff\xfe ok",
			Message{Format: FormatRFC3164, Facility: 1, Severity: 5, App: "app", Text: "\uFFFD\uFFFD ok"}},
		{"multi-line, tabs", "<13>app: line1\r\n\tline2\n",
			Message{Format: FormatRFC3164, Facility: 1, Severity: 5, App: "app", Text: "line1   line2"}},
		{"10 KiB message", "<13>app: " + long,
			Message{Format: FormatRFC3164, Facility: 1, Severity: 5, App: "app", Text: long[:MaxText]}},
		{"overlong tag is text", "<13>" + strings.Repeat("t", MaxApp+1) + ": m",
			Message{Format: FormatRFC3164, Facility: 1, Severity: 5, Text: strings.Repeat("t", MaxApp+1) + ": m"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Parse([]byte(tc.in))); diff != "" {
				t.Errorf("Parse(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		m    Message
		want string
	}{
		{Message{Severity: 4, App: "kernel", Text: "hello"}, "warning kernel: hello"},
		{Message{Severity: 6}, "info -:"},
		{Message{Severity: 9, Text: "x"}, "notice -: x"}, // out of range: never indexes past the table
	} {
		if got := tc.m.String(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.m, got, tc.want)
		}
	}
}

func TestCut(t *testing.T) {
	s := strings.Repeat("a", 199) + "é" // é is 2 bytes: 201 bytes, cut mid-character at 200
	if got := cut(s, 200); got != strings.Repeat("a", 199) {
		t.Errorf("cut split a character: %q", got[190:])
	}
	if got := cut("short", 200); got != "short" {
		t.Errorf("got %q", got)
	}
	if !utf8.ValidString(cut(strings.Repeat("€", 100), 200)) {
		t.Error("invalid UTF-8")
	}
}
