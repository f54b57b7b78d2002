package dhcpd

import "slices"

// essential options stay in a reply whatever the client's maximum size: the lease (RFC 2131
// table 3), the mask and router, the boot parameters a PXE client needs, and the echoes the
// RFCs require (61: RFC 6842; 82: RFC 3046 §2.2).
var essential = map[uint8]bool{54: true, 51: true, 58: true, 59: true, 1: true, 3: true,
	43: true, 60: true, 66: true, 67: true, 61: true, 82: true}

// Where an option of a trimmed reply goes (RFC 2131 §4.1, RFC 2132 §9.3: option overload).
const (
	inNone  = iota // dropped: it fits nowhere
	inMain         // the options field
	inFile         // the file field, overloaded
	inSname        // the sname field, overloaded
)

// fitReply encodes a reply that is larger than limit (the largest DHCP message the client
// accepts) by keeping the essential options, then the ones the client asked for in the order
// of its parameter request list, then the rest, each where it still fits: the options field,
// else the file and sname fields (option 52) when the header leaves them free. RFC 2131 §4.3.1:
// as many requested parameters as possible, omit the others. It returns the reply and the codes
// it dropped; errTooLarge when even the essential options do not fit.
func fitReply(h *replyHeader, msgType uint8, opts []option, prl []uint8, limit int) ([]byte, []uint8, error) {
	rank := rankOptions(opts, prl)
	fileFree := len(h.file) == 0 || len(h.file) >= fileLen // a long boot file travels in option 67 only
	where, dropped, overloaded, err := place(opts, rank, limit, fileFree, true)
	// Without option 52 the options field has 3 more bytes: for essential options that did not
	// fit, or when nothing went to file or sname.
	if err != nil || !overloaded {
		where, dropped, _, err = place(opts, rank, limit, false, false)
		if err != nil {
			return nil, nil, err
		}
	}
	var main, file, sname []option
	for i, o := range opts { // each area keeps the configured order: the same as an untrimmed reply
		switch where[i] {
		case inMain:
			main = append(main, o)
		case inFile:
			file = append(file, o)
		case inSname:
			sname = append(sname, o)
		}
	}
	if overload := overloadValue(file, sname); overload != 0 {
		// Option 52 goes first, before any echo that must stay last (82).
		main = append([]option{{52, []byte{overload}}}, main...)
	}
	b, err := encodeReply(nil, h, msgType, main, limit)
	if err != nil {
		return nil, nil, err
	}
	if file != nil {
		clear(b[fileOffset : fileOffset+fileLen])
		writeOverloaded(b[fileOffset:fileOffset+fileLen], file)
	}
	if sname != nil {
		writeOverloaded(b[snameOffset:fileOffset], sname)
	}
	return b, dropped, nil
}

// rankOptions orders the indices of opts by how much they must stay: essential, then requested
// in the client's order, then the rest in configured order.
func rankOptions(opts []option, prl []uint8) []int {
	rank := make([]int, 0, len(opts))
	taken := make([]bool, len(opts))
	add := func(i int) {
		if !taken[i] {
			taken[i] = true
			rank = append(rank, i)
		}
	}
	for i, o := range opts {
		if essential[o.code] {
			add(i)
		}
	}
	for _, c := range prl {
		for i, o := range opts {
			if o.code == c {
				add(i)
			}
		}
	}
	for i := range opts {
		add(i)
	}
	return rank
}

// place decides where each option goes. overload allows the file (when fileFree) and sname
// fields; it reports whether it used them.
func place(opts []option, rank []int, limit int, fileFree, overload bool) ([]int, []uint8, bool, error) {
	room := limit - headerLen - cookieLen - 3 - 1 // option 53 and END
	var fileRoom, snameRoom int
	if overload {
		room -= 3 // option 52
		snameRoom = 64 - 1
		if fileFree {
			fileRoom = fileLen - 1
		}
	}
	where := make([]int, len(opts))
	var dropped []uint8
	used := false
	for _, i := range rank {
		n := encodedLen(opts[i].data)
		switch {
		case n <= room:
			room -= n
			where[i] = inMain
		case essential[opts[i].code]:
			return nil, nil, false, errTooLarge // the options field is the only place for these
		case n <= fileRoom:
			fileRoom -= n
			where[i], used = inFile, true
		case n <= snameRoom:
			snameRoom -= n
			where[i], used = inSname, true
		default:
			dropped = append(dropped, opts[i].code)
		}
	}
	slices.Sort(dropped)
	return where, dropped, used, nil
}

// encodedLen is the size of an option's data as appendOptionArea writes it (RFC 3396 splits
// more than 255 bytes into several instances).
func encodedLen(data []byte) int {
	n := max(1, (len(data)+254)/255)
	return 2*n + len(data)
}

func overloadValue(file, sname []option) byte {
	var v byte
	if file != nil {
		v |= 1
	}
	if sname != nil {
		v |= 2
	}
	return v
}

// writeOverloaded writes opts and END into an overloaded header field (zeroed, large enough).
func writeOverloaded(dst []byte, opts []option) {
	b := dst[:0]
	for _, o := range opts {
		for d := o.data; ; {
			n := min(len(d), 255)
			b = append(b, o.code, byte(n))
			b = append(b, d[:n]...)
			d = d[n:]
			if len(d) == 0 {
				break
			}
		}
	}
	dst[len(b)] = 255
}
