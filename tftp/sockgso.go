package tftp

import (
	"errors"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// UDP generic segmentation offload (Linux ≥ 4.18): a window of DATA packets goes to the kernel
// as one payload, laid out [header 1|block 1][header 2|block 2]... with a UDP_SEGMENT control
// message of the packet size, and the kernel cuts it into exactly those packets (the last may
// be shorter) after one walk down the UDP/IP stack, and through a veth or a bridge as one
// buffer, instead of one walk per packet. No copy: each packet stays two iovecs. The client
// still receives plain datagrams, cut by the NIC or by the stack at the latest before its
// socket.

const (
	// maxGSOSegments is the kernel's UDP_MAX_SEGMENTS on every kernel with UDP GSO (newer
	// ones allow 128).
	maxGSOSegments = 64
	// maxGSOBytes is the largest UDP payload of one GSO message: an IPv4 datagram holds 65535
	// bytes, its 20-byte header and the 8-byte UDP header included (IPv6 allows a little more).
	maxGSOBytes = 65535 - 20 - 8
)

// gsoSupported reports whether the kernel knows UDP_SEGMENT on socket fd. A kernel that does
// not would ignore the control message and send a window as one (fragmented) datagram.
func gsoSupported(fd uintptr) bool {
	_, err := unix.GetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT)
	return err == nil
}

// gsoRefused reports whether err is the kernel refusing a GSO message, where the same packets
// sent one by one go out: EIO (no checksum offload on old kernels, UDP-Lite, IPsec), EINVAL
// (packets larger than the path MTU, too many segments, checksums off), EMSGSIZE, or no
// support at all.
func gsoRefused(err error) bool {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case unix.EIO, unix.EINVAL, unix.EMSGSIZE, unix.ENOPROTOOPT, unix.EOPNOTSUPP:
		return true
	}
	return false
}

// messageLen is the size of the packet m carries.
func messageLen(m *ipv4.Message) int {
	n := 0
	for _, b := range m.Buffers {
		n += len(b)
	}
	return n
}

// layoutGSO fills s.hdrs with ms as GSO messages: each takes a run of packets of its first
// packet's size, and ends after a shorter one (the final block of a file), at maxGSOSegments
// packets, or before maxGSOBytes. A message of one packet carries no control message. It
// returns the number of messages; s.segs holds how many packets each carries.
func (s *sockSend) layoutGSO(ms []ipv4.Message) int {
	m, iov := 0, 0
	for i := 0; i < len(ms); m++ {
		first, size, total := iov, messageLen(&ms[i]), 0
		j := i
		for j < len(ms) && j-i < maxGSOSegments {
			l := messageLen(&ms[j])
			if j > i && (l > size || total+l > maxGSOBytes) {
				break
			}
			iov += s.putIovecs(iov, &ms[j])
			total += l
			j++
			if l < size {
				break
			}
		}
		h := &s.hdrs[m]
		h.Hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&s.sa)), Namelen: s.salen, Iov: &s.iovs[first]}
		h.Hdr.SetIovlen(iov - first)
		h.Len = 0
		if j-i > 1 {
			c := s.cmsgs[m*gsoCmsgSpace : (m+1)*gsoCmsgSpace]
			putGSOCmsg(c, uint16(size))
			h.Hdr.Control = &c[0]
			h.Hdr.SetControllen(len(c))
		}
		s.segs[m] = j - i
		i = j
	}
	return m
}

// gsoCmsgSpace is the room of one UDP_SEGMENT control message (a uint16).
var gsoCmsgSpace = unix.CmsgSpace(2)

// putGSOCmsg writes a UDP_SEGMENT control message of segment size size into c.
func putGSOCmsg(c []byte, size uint16) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])) = size
}
