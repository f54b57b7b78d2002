package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Opcodes (RFC 1350, RFC 2347).
const (
	opRRQ   uint16 = 1
	opWRQ   uint16 = 2
	opDATA  uint16 = 3
	opACK   uint16 = 4
	opERROR uint16 = 5
	opOACK  uint16 = 6
)

// Error codes (RFC 1350, RFC 2347).
const (
	errNotDefined      uint16 = 0
	errFileNotFound    uint16 = 1
	errAccessViolation uint16 = 2
	errDiskFull        uint16 = 3
	errIllegalOp       uint16 = 4
	errUnknownTID      uint16 = 5
	errFileExists      uint16 = 6
	errNoSuchUser      uint16 = 7
	errOptionRefused   uint16 = 8
)

// Limits from RFC 2348, 2349 and 7440; the blksize bounds are exported because the
// configuration checks its cap against them (one owner of the bound).
const (
	MinBlksize    = 8
	MaxBlksize    = 65464
	defaultBlock  = 512
	minTimeoutOpt = 1
	maxTimeoutOpt = 255
	maxWindowOpt  = 65535
)

// option is one name/value pair of a request, in the order the client sent them.
// The name is lower-cased: RFC 2347 option names are case-insensitive.
type option struct {
	Name, Value string
}

// packet is a decoded TFTP packet; which fields are set depends on Op.
type packet struct {
	Op       uint16
	Filename string   // RRQ, WRQ
	Mode     string   // RRQ, WRQ; lower-cased
	Options  []option // RRQ, WRQ, OACK
	Block    uint16   // DATA, ACK
	Data     []byte   // DATA; aliases the input buffer
	ErrCode  uint16   // ERROR
	ErrMsg   string   // ERROR
}

var (
	errShort     = errors.New("tftp: packet too short")
	errNoNUL     = errors.New("tftp: string not NUL-terminated")
	errEmptyName = errors.New("tftp: empty filename")
	errOddOpts   = errors.New("tftp: option without value")
	errEmptyOpt  = errors.New("tftp: empty option name")
	errDupOpt    = errors.New("tftp: duplicate option")
	errUnknownOp = errors.New("tftp: unknown opcode")
)

// parsePacket decodes b. It never panics on any input; returned slices alias b.
func parsePacket(b []byte) (packet, error) {
	if len(b) < 2 {
		return packet{}, errShort
	}
	p := packet{Op: binary.BigEndian.Uint16(b)}
	body := b[2:]
	switch p.Op {
	case opRRQ, opWRQ:
		fields, err := splitStrings(body)
		if err != nil {
			return p, err
		}
		if len(fields) < 2 {
			return p, errShort
		}
		if fields[0] == "" {
			return p, errEmptyName
		}
		p.Filename = fields[0]
		p.Mode = strings.ToLower(fields[1])
		p.Options, err = pairOptions(fields[2:])
		return p, err
	case opOACK:
		fields, err := splitStrings(body)
		if err != nil {
			return p, err
		}
		p.Options, err = pairOptions(fields)
		return p, err
	case opDATA:
		if len(body) < 2 {
			return p, errShort
		}
		p.Block = binary.BigEndian.Uint16(body)
		p.Data = body[2:]
		return p, nil
	case opACK:
		// Some clients pad ACKs; only the block number matters.
		if len(body) < 2 {
			return p, errShort
		}
		p.Block = binary.BigEndian.Uint16(body)
		return p, nil
	case opERROR:
		if len(body) < 2 {
			return p, errShort
		}
		p.ErrCode = binary.BigEndian.Uint16(body)
		msg := body[2:]
		// Be lenient about a missing terminator: the message is informational only.
		if i := bytes.IndexByte(msg, 0); i >= 0 {
			msg = msg[:i]
		}
		p.ErrMsg = string(msg)
		return p, nil
	default:
		return p, errUnknownOp
	}
}

// splitStrings splits a sequence of NUL-terminated strings. Trailing bytes after the last
// NUL are an error.
func splitStrings(b []byte) ([]string, error) {
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0)
		if i < 0 {
			return nil, errNoNUL
		}
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out, nil
}

// pairOptions pairs option names with their values. Some clients pad requests with NULs
// (to a minimum length, or one more terminator); any number of them where the next option
// name would begin are padding, while an option's empty value is still a value.
func pairOptions(f []string) ([]option, error) {
	for i := 0; i < len(f); i += 2 {
		if allEmpty(f[i:]) {
			f = f[:i]
			break
		}
	}
	if len(f)%2 != 0 {
		return nil, errOddOpts
	}
	var opts []option
	for i := 0; i < len(f); i += 2 {
		name := strings.ToLower(f[i])
		if name == "" {
			return nil, errEmptyOpt
		}
		for _, o := range opts {
			if o.Name == name {
				return nil, errDupOpt
			}
		}
		opts = append(opts, option{Name: name, Value: f[i+1]})
	}
	return opts, nil
}

func allEmpty(f []string) bool {
	for _, s := range f {
		if s != "" {
			return false
		}
	}
	return true
}

// appendRRQ encodes a read request (used by tests and the fuzzer's round trip).
func appendRRQ(b []byte, name, mode string, opts ...option) []byte {
	b = binary.BigEndian.AppendUint16(b, opRRQ)
	b = append(append(b, name...), 0)
	b = append(append(b, mode...), 0)
	for _, o := range opts {
		b = append(append(b, o.Name...), 0)
		b = append(append(b, o.Value...), 0)
	}
	return b
}

func appendOACK(b []byte, opts []option) []byte {
	b = binary.BigEndian.AppendUint16(b, opOACK)
	for _, o := range opts {
		b = append(append(b, o.Name...), 0)
		b = append(append(b, o.Value...), 0)
	}
	return b
}

func appendError(b []byte, code uint16, msg string) []byte {
	b = binary.BigEndian.AppendUint16(b, opERROR)
	b = binary.BigEndian.AppendUint16(b, code)
	return append(append(b, msg...), 0)
}

func appendAck(b []byte, block uint16) []byte {
	b = binary.BigEndian.AppendUint16(b, opACK)
	return binary.BigEndian.AppendUint16(b, block)
}

// putDataHeader writes the 4-byte DATA header into h.
func putDataHeader(h []byte, block uint16) {
	binary.BigEndian.PutUint16(h, opDATA)
	binary.BigEndian.PutUint16(h[2:], block)
}

// optionError is a malformed or out-of-range option value: answered with ERROR 8.
type optionError struct{ name, value string }

func (e *optionError) Error() string {
	return fmt.Sprintf("bad value %q for option %s", e.value, e.name)
}

// params are the negotiated transfer parameters.
type params struct {
	blksize int
	window  int
	timeout time.Duration // 0: the server default
	tsize   bool          // the client asked for tsize
	// oack lists the accepted options in request order; empty means no OACK is sent.
	oack []option
}

// negotiate applies RFC 2347/2348/2349/7440 to the request's options. size is the
// (netascii-converted) length of the file, answered to tsize. Unknown options are ignored.
func negotiate(opts []option, size int64, maxBlk, maxWin int) (params, error) {
	p := params{blksize: defaultBlock, window: 1}
	for _, o := range opts {
		switch o.Name {
		case "blksize":
			v, err := parseOptInt(o, MinBlksize, MaxBlksize)
			if err != nil {
				return p, err
			}
			p.blksize = min(v, maxBlk)
			p.oack = append(p.oack, option{o.Name, strconv.Itoa(p.blksize)})
		case "tsize":
			// In an RRQ the client sends 0; any non-negative number is tolerated.
			if _, err := parseOptInt(o, 0, 1<<62); err != nil {
				return p, err
			}
			p.tsize = true
			p.oack = append(p.oack, option{o.Name, strconv.FormatInt(size, 10)})
		case "timeout":
			v, err := parseOptInt(o, minTimeoutOpt, maxTimeoutOpt)
			if err != nil {
				return p, err
			}
			p.timeout = time.Duration(v) * time.Second
			p.oack = append(p.oack, option{o.Name, strconv.Itoa(v)})
		case "windowsize":
			v, err := parseOptInt(o, 1, maxWindowOpt)
			if err != nil {
				return p, err
			}
			p.window = min(v, maxWin)
			p.oack = append(p.oack, option{o.Name, strconv.Itoa(p.window)})
		}
	}
	return p, nil
}

func parseOptInt(o option, lo, hi int) (int, error) {
	s := strings.TrimSpace(o.Value)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < int64(lo) || v > int64(hi) {
		return 0, &optionError{o.Name, o.Value}
	}
	return int(v), nil
}
