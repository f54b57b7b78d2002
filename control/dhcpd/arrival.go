package dhcpd

import (
	"encoding/binary"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel stamps each request as it reaches the socket (SO_TIMESTAMPNS), so the request
// latency metric counts the time a request waited in the socket's queue before a reader took
// it, not only the time after: under load that wait is where a request's time can go.

// arrivalOOB is room for one SCM_TIMESTAMPNS control message.
var arrivalOOB = unix.CmsgSpace(16) // struct timespec: two 64-bit fields

// arrival returns the SCM_TIMESTAMPNS time in a received message's control data, or ok false
// if there is none. It reads the 64-bit layout (amd64, arm64: cmsghdr of 16 bytes, native byte
// order, as the kernel writes it); elsewhere it finds none and the read time stands in.
func arrival(oob []byte) (t time.Time, ok bool) {
	const hdr = 16
	if unix.SizeofCmsghdr != hdr {
		return time.Time{}, false
	}
	for len(oob) >= hdr {
		n := binary.NativeEndian.Uint64(oob)
		level := int32(binary.NativeEndian.Uint32(oob[8:]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:]))
		if n < hdr || n > uint64(len(oob)) {
			return time.Time{}, false
		}
		if data := oob[hdr:n]; level == unix.SOL_SOCKET && typ == unix.SCM_TIMESTAMPNS && len(data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(data))
			nsec := int64(binary.NativeEndian.Uint64(data[8:]))
			return time.Unix(sec, nsec), true
		}
		next := unix.CmsgSpace(int(n) - hdr)
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return time.Time{}, false
}
