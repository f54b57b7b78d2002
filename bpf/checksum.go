package bpf

// OnesSum adds b to s as the Internet checksum (RFC 1071) sums: big-endian 16-bit words, an odd
// last byte padded with a zero. It is the one ones-complement sum; the Go reply path uses it too.
func OnesSum(s uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	return s
}

// OnesFold folds the carries of a sum from OnesSum back in; its complement is the checksum.
func OnesFold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
