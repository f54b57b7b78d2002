package syslog

import (
	"bytes"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Format is how a message was framed.
type Format int

// Formats Parse recognises.
const (
	FormatRaw     Format = iota // no valid <PRI>: the whole datagram is the text
	FormatRFC3164               // <PRI> then BSD syslog, with or without timestamp and host
	FormatRFC5424               // <PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG
)

// Bounds on what Parse returns, whatever it is fed. The header caps are RFC 5424's (§6).
const (
	MaxHostname = 255
	MaxApp      = 48
	MaxProcID   = 128
	MaxMsgID    = 32
	// MaxText caps the message text: enough for the longest kernel or systemd line, and what
	// BootedPattern sees; the recorded detail is cut much shorter (MaxDetail).
	MaxText = 4096
)

// Defaults when a message carries no priority: user.notice (RFC 3164 §4.3.3).
const (
	defaultFacility = 1
	defaultSeverity = 5
)

var severityNames = [8]string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

// Message is one parsed syslog message. Every string is valid UTF-8 without control
// characters and within the Max* bounds.
type Message struct {
	Format   Format
	Facility int // 0..23
	Severity int // 0..7
	Hostname string
	App      string // RFC 3164 tag (without [pid]) or RFC 5424 APP-NAME
	ProcID   string
	MsgID    string
	Text     string
}

// SeverityName is the severity as logger(1) spells it: emerg .. debug.
func (m Message) SeverityName() string {
	if m.Severity < 0 || m.Severity > 7 {
		return severityNames[defaultSeverity]
	}
	return severityNames[m.Severity]
}

// String is the message as one line: "<severity> <app>: <text>", with "-" for no app.
func (m Message) String() string {
	app := m.App
	if app == "" {
		app = "-"
	}
	s := m.SeverityName() + " " + app + ":"
	if m.Text != "" {
		s += " " + m.Text
	}
	return s
}

// Parse reads one datagram as RFC 5424, RFC 3164 or, failing both, raw text. It never fails:
// senders at boot time (initramfs loggers, busybox, firmware) are too varied to reject any.
func Parse(b []byte) Message {
	b = bytes.Trim(b, " \t\r\n\x00")
	pri, rest, ok := parsePRI(b)
	if !ok {
		return Message{Format: FormatRaw, Facility: defaultFacility, Severity: defaultSeverity, Text: clean(b, MaxText)}
	}
	m := Message{Facility: pri / 8, Severity: pri % 8}
	if parse5424(&m, rest) {
		return m
	}
	parse3164(&m, rest)
	return m
}

// parsePRI reads "<N>" with N of 1 to 3 digits, at most 191 (facility 23, severity 7).
func parsePRI(b []byte) (int, []byte, bool) {
	if len(b) < 3 || b[0] != '<' {
		return 0, nil, false
	}
	n, i := 0, 1
	for ; i < len(b) && i <= 4 && isDigit(b[i]); i++ {
		n = n*10 + int(b[i]-'0')
	}
	if i == 1 || i > 4 || i >= len(b) || b[i] != '>' || n > 191 {
		return 0, nil, false
	}
	return n, b[i+1:], true
}

// parse5424 fills m from "1 TIMESTAMP HOST APP PROCID MSGID SD [MSG]" and reports whether b
// looked like RFC 5424 at all; a header cut short leaves the missing fields empty.
func parse5424(m *Message, b []byte) bool {
	if len(b) < 3 || b[0] != '1' || b[1] != ' ' {
		return false
	}
	// "1 " could start a BSD message ("<13>1 apple"): the timestamp must look like one.
	ts, _ := token(b[2:])
	if !(len(ts) == 1 && ts[0] == '-') && !(len(ts) >= 10 && isDigit(ts[0]) && ts[4] == '-') {
		return false
	}
	m.Format = FormatRFC5424
	rest := b[2:]
	var f [5][]byte // timestamp, host, app, procid, msgid
	for i := range f {
		f[i], rest = token(rest)
	}
	m.Hostname = nilValue(f[1], MaxHostname)
	m.App = nilValue(f[2], MaxApp)
	m.ProcID = nilValue(f[3], MaxProcID)
	m.MsgID = nilValue(f[4], MaxMsgID)
	rest = skipSD(rest)
	rest = bytes.TrimPrefix(bytes.TrimPrefix(rest, []byte(" ")), []byte("\xEF\xBB\xBF")) // RFC 5424 §6.4: MSG may start with a BOM
	m.Text = clean(rest, MaxText)
	return true
}

// skipSD returns what follows the structured data: "-" or one or more "[id k="v"...]". A
// malformed element is left in place, so its text is kept as part of the message.
func skipSD(b []byte) []byte {
	if len(b) > 0 && b[0] == '-' && (len(b) == 1 || b[1] == ' ') {
		return b[1:]
	}
	i := 0
	for i < len(b) && b[i] == '[' {
		end := sdElementEnd(b[i:])
		if end < 0 {
			break
		}
		i += end
	}
	return b[i:]
}

// sdElementEnd is the length of the element at the start of b, up to its closing ']', or -1
// if it never closes. Inside quoted values '\' escapes and ']' does not close (RFC 5424 §6.3.3).
func sdElementEnd(b []byte) int {
	quoted := false
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ']':
			return i + 1
		}
	}
	return -1
}

// parse3164 fills m from "[TIMESTAMP ][HOST ][TAG[PID]: ]MSG". A host is taken only between a
// timestamp and a tag: without those anchors a first word is as likely to be the message.
func parse3164(m *Message, b []byte) {
	m.Format = FormatRFC3164
	rest, stamped := skipTimestamp(b)
	t1, after1 := token(rest)
	if app, pid, ok := tag(t1); ok {
		m.App, m.ProcID = app, pid
		rest = after1
	} else if stamped {
		t2, after2 := token(after1)
		if app, pid, ok := tag(t2); ok {
			m.Hostname = clean(t1, MaxHostname)
			m.App, m.ProcID = app, pid
			rest = after2
		}
	}
	m.Text = clean(rest, MaxText)
}

var months = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

// skipTimestamp skips "Mmm dd hh:mm:ss" (day space-padded or not, seconds maybe with a
// fraction) or an RFC 3339 timestamp, and reports whether there was one.
func skipTimestamp(b []byte) ([]byte, bool) {
	first, rest := token(b)
	if len(first) >= 20 && isDigit(first[0]) {
		if _, err := time.Parse(time.RFC3339Nano, string(first)); err == nil {
			return rest, true
		}
		return b, false
	}
	if len(first) != 3 {
		return b, false
	}
	month := false
	for _, mo := range months {
		month = month || strings.EqualFold(string(first), mo)
	}
	if !month {
		return b, false
	}
	rest = bytes.TrimLeft(rest, " ")
	day, rest := token(rest)
	if len(day) < 1 || len(day) > 2 || !allDigits(day) {
		return b, false
	}
	clock, rest := token(rest)
	if len(clock) < 8 || !isDigit(clock[0]) || !isDigit(clock[1]) || clock[2] != ':' ||
		!isDigit(clock[3]) || !isDigit(clock[4]) || clock[5] != ':' || !isDigit(clock[6]) || !isDigit(clock[7]) ||
		(len(clock) > 8 && (clock[8] != '.' || !allDigits(clock[9:]))) {
		return b, false
	}
	return rest, true
}

// tag reads a BSD tag token: "name:" or "name[pid]:", name without ':', '[' or ']'.
func tag(t []byte) (app, pid string, ok bool) {
	if len(t) < 2 || t[len(t)-1] != ':' {
		return "", "", false
	}
	name := t[:len(t)-1]
	var p []byte
	if name[len(name)-1] == ']' {
		open := bytes.IndexByte(name, '[')
		if open < 0 {
			return "", "", false
		}
		name, p = name[:open], name[open+1:len(name)-1]
	}
	if len(name) == 0 || len(name) > MaxApp || bytes.ContainsAny(name, ":[]") || len(p) > MaxProcID {
		return "", "", false
	}
	return clean(name, MaxApp), clean(p, MaxProcID), true
}

// token splits b at its first space: the word before it and what follows the space.
func token(b []byte) (word, rest []byte) {
	if i := bytes.IndexByte(b, ' '); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

func nilValue(b []byte, limit int) string {
	if len(b) == 1 && b[0] == '-' {
		return ""
	}
	return clean(b, limit)
}

// clean makes b safe to store and show: invalid UTF-8 becomes U+FFFD, tabs and line breaks
// become spaces, other control characters go, and the result is trimmed and at most limit
// bytes (cut between characters).
func clean(b []byte, limit int) string {
	var sb strings.Builder
	sb.Grow(min(len(b), limit))
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f':
			r = ' '
		case unicode.IsControl(r):
			continue
		}
		if sb.Len() == 0 && r == ' ' {
			continue // leading space: trimmed here so it never counts against the limit
		}
		if sb.Len()+utf8.RuneLen(r) > limit {
			break
		}
		sb.WriteRune(r)
	}
	return strings.TrimRight(sb.String(), " ")
}

// cut shortens s to at most n bytes without splitting a character.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(b []byte) bool {
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return len(b) > 0
}
