// Package tftp is netbootd's TFTP read server (RFC 1350 with the option extensions of
// RFC 2347, 2348, 2349 and 7440) tuned for network boot: windowed sends with sendmmsg,
// an RTT-adaptive retransmit timer and a shared in-memory file cache.
package tftp
