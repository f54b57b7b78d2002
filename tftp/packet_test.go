package tftp

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParsePacket(t *testing.T) {
	rrq := func(s string) []byte { return append([]byte{0, 1}, s...) }
	tests := []struct {
		name    string
		in      []byte
		want    packet
		wantErr error
	}{
		{name: "rrq plain", in: rrq("pxelinux.0\x00octet\x00"),
			want: packet{Op: opRRQ, Filename: "pxelinux.0", Mode: "octet"}},
		{name: "rrq mode case", in: rrq("a\x00NetASCII\x00"),
			want: packet{Op: opRRQ, Filename: "a", Mode: "netascii"}},
		{name: "rrq options", in: rrq("f\x00octet\x00BLKSIZE\x001468\x00tsize\x000\x00"),
			want: packet{Op: opRRQ, Filename: "f", Mode: "octet",
				Options: []option{{"blksize", "1468"}, {"tsize", "0"}}}},
		{name: "rrq padding NUL", in: rrq("f\x00octet\x00\x00"),
			want: packet{Op: opRRQ, Filename: "f", Mode: "octet"}},
		{name: "rrq padding 2 NULs", in: rrq("f\x00octet\x00\x00\x00"),
			want: packet{Op: opRRQ, Filename: "f", Mode: "octet"}},
		{name: "rrq padding 4 NULs", in: rrq("f\x00octet\x00\x00\x00\x00\x00"),
			want: packet{Op: opRRQ, Filename: "f", Mode: "octet"}},
		{name: "rrq options padding 1", in: rrq("f\x00octet\x00tsize\x000\x00\x00"),
			want: packet{Op: opRRQ, Filename: "f", Mode: "octet", Options: []option{{"tsize", "0"}}}},
		{name: "rrq options padding 2", in: rrq("f\x00octet\x00tsize\x000\x00\x00\x00"),
			want: packet{Op: opRRQ, Filename: "f", Mode: "octet", Options: []option{{"tsize", "0"}}}},
		{name: "rrq empty value padded", in: rrq("f\x00octet\x00tsize\x00\x00\x00\x00"),
			want: packet{Op: opRRQ, Filename: "f", Mode: "octet", Options: []option{{"tsize", ""}}}},
		{name: "rrq empty value", in: rrq("f\x00octet\x00tsize\x00\x00"),
			want: packet{Op: opRRQ, Filename: "f", Mode: "octet", Options: []option{{"tsize", ""}}}},
		{name: "rrq no NUL", in: rrq("pxelinux.0"), wantErr: errNoNUL},
		{name: "rrq mode no NUL", in: rrq("f\x00octet"), wantErr: errNoNUL},
		{name: "rrq no mode", in: rrq("f\x00"), wantErr: errShort},
		{name: "rrq empty", in: rrq(""), wantErr: errShort},
		{name: "rrq empty name", in: rrq("\x00octet\x00"), wantErr: errEmptyName},
		{name: "rrq odd options", in: rrq("f\x00octet\x00blksize\x00"), wantErr: errOddOpts},
		{name: "rrq odd options 3", in: rrq("f\x00octet\x00blksize\x00512\x00tsize\x00"), wantErr: errOddOpts},
		{name: "rrq empty option name", in: rrq("f\x00octet\x00\x00512\x00"), wantErr: errEmptyOpt},
		{name: "rrq duplicate option", in: rrq("f\x00octet\x00blksize\x00512\x00BlkSize\x001024\x00"), wantErr: errDupOpt},
		{name: "wrq", in: append([]byte{0, 2}, "f\x00octet\x00"...),
			want: packet{Op: opWRQ, Filename: "f", Mode: "octet"}},
		{name: "ack", in: []byte{0, 4, 0xff, 0xfe}, want: packet{Op: opACK, Block: 65534}},
		{name: "ack padded", in: []byte{0, 4, 0, 1, 0, 0}, want: packet{Op: opACK, Block: 1}},
		{name: "ack short", in: []byte{0, 4, 1}, wantErr: errShort},
		{name: "data", in: []byte{0, 3, 0, 7, 'h', 'i'}, want: packet{Op: opDATA, Block: 7, Data: []byte("hi")}},
		{name: "data short", in: []byte{0, 3, 0}, wantErr: errShort},
		{name: "error", in: append([]byte{0, 5, 0, 8}, "no\x00"...), want: packet{Op: opERROR, ErrCode: 8, ErrMsg: "no"}},
		{name: "error no NUL", in: append([]byte{0, 5, 0, 1}, "x"...), want: packet{Op: opERROR, ErrCode: 1, ErrMsg: "x"}},
		{name: "error short", in: []byte{0, 5, 0}, wantErr: errShort},
		{name: "oack", in: append([]byte{0, 6}, "blksize\x00512\x00"...),
			want: packet{Op: opOACK, Options: []option{{"blksize", "512"}}}},
		{name: "unknown op", in: []byte{0, 9, 0, 0}, wantErr: errUnknownOp},
		{name: "op zero", in: []byte{0, 0}, wantErr: errUnknownOp},
		{name: "one byte", in: []byte{0}, wantErr: errShort},
		{name: "nil", in: nil, wantErr: errShort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parsePacket(tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(packet{}, option{})); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	if got, want := appendError(nil, 2, "writes are not supported"), []byte("\x00\x05\x00\x02writes are not supported\x00"); !bytes.Equal(got, want) {
		t.Errorf("error = %q", got)
	}
	if got := appendOACK(nil, []option{{"blksize", "1468"}, {"tsize", "42"}}); string(got) != "\x00\x06blksize\x001468\x00tsize\x0042\x00" {
		t.Errorf("oack = %q", got)
	}
	if got := appendAck(nil, 258); !bytes.Equal(got, []byte{0, 4, 1, 2}) {
		t.Errorf("ack = %v", got)
	}
	h := make([]byte, 4)
	putDataHeader(h, 65535)
	if !bytes.Equal(h, []byte{0, 3, 0xff, 0xff}) {
		t.Errorf("data header = %v", h)
	}
}

func TestNegotiate(t *testing.T) {
	tests := []struct {
		name    string
		opts    []option
		want    params
		wantErr bool
	}{
		{name: "none", want: params{blksize: 512, window: 1}},
		{name: "unknown ignored", opts: []option{{"multicast", ""}, {"foo", "bar"}}, want: params{blksize: 512, window: 1}},
		{name: "all", opts: []option{{"blksize", "1024"}, {"tsize", "0"}, {"timeout", "3"}, {"windowsize", "8"}},
			want: params{blksize: 1024, window: 8, timeout: 3 * time.Second, tsize: true,
				oack: []option{{"blksize", "1024"}, {"tsize", "1234"}, {"timeout", "3"}, {"windowsize", "8"}}}},
		{name: "capped", opts: []option{{"blksize", "65464"}, {"windowsize", "65535"}},
			want: params{blksize: 1468, window: 64, oack: []option{{"blksize", "1468"}, {"windowsize", "64"}}}},
		{name: "blksize min", opts: []option{{"blksize", "8"}},
			want: params{blksize: 8, window: 1, oack: []option{{"blksize", "8"}}}},
		{name: "blksize small", opts: []option{{"blksize", "7"}}, wantErr: true},
		{name: "blksize big", opts: []option{{"blksize", "65465"}}, wantErr: true},
		{name: "blksize junk", opts: []option{{"blksize", "12x"}}, wantErr: true},
		{name: "blksize empty", opts: []option{{"blksize", ""}}, wantErr: true},
		{name: "timeout 0", opts: []option{{"timeout", "0"}}, wantErr: true},
		{name: "timeout 256", opts: []option{{"timeout", "256"}}, wantErr: true},
		{name: "window 0", opts: []option{{"windowsize", "0"}}, wantErr: true},
		{name: "window big", opts: []option{{"windowsize", "65536"}}, wantErr: true},
		{name: "tsize negative", opts: []option{{"tsize", "-1"}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := negotiate(tc.opts, 1234, 1468, 64)
			if tc.wantErr {
				var oe *optionError
				if !errors.As(err, &oe) {
					t.Fatalf("err = %v, want optionError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(params{}, option{})); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}

func FuzzParsePacket(f *testing.F) {
	f.Add(appendRRQ(nil, "pxelinux.0", "octet"))
	f.Add(appendRRQ(nil, "/boot/x", "netascii", option{"blksize", "1468"}, option{"tsize", "0"}, option{"windowsize", "16"}))
	f.Add([]byte("\x00\x01f\x00octet\x00blksize\x00"))
	f.Add([]byte("\x00\x01\x00\x00"))
	f.Add([]byte{0, 4, 0, 1})
	f.Add([]byte{0, 3, 0, 1, 'x'})
	f.Add([]byte("\x00\x05\x00\x08nope\x00"))
	f.Add([]byte("\x00\x06blksize\x00512\x00"))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePacket(b)
		if err != nil {
			return
		}
		if p.Op == opRRQ {
			// A parsed request re-encodes to something that parses the same.
			q, err := parsePacket(appendRRQ(nil, p.Filename, p.Mode, p.Options...))
			if err != nil || q.Filename != p.Filename || q.Mode != p.Mode || len(q.Options) != len(p.Options) {
				t.Fatalf("round trip: %+v -> %+v, %v", p, q, err)
			}
			// Negotiation must not panic either, whatever the values.
			_, _ = negotiate(p.Options, 1<<20, 1468, 64)
		}
	})
}
