package bpf

import "testing"

// RFC 1071 §3's example: the words 0001 f203 f4f5 f6f7 sum to ddf2 once the carries are folded.
func TestOnesSumRFC1071(t *testing.T) {
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := OnesFold(OnesSum(0, b)); got != 0xddf2 {
		t.Errorf("sum %#04x, want 0xddf2", got)
	}
	// An odd last byte is the high half of a word padded with zero.
	if got, want := OnesFold(OnesSum(0, b[:7])), OnesFold(OnesSum(0, append(b[:7:7], 0))); got != want {
		t.Errorf("odd length: %#04x, want %#04x", got, want)
	}
}
