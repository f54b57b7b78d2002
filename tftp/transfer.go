package tftp

import (
	"time"
)

// minRTO keeps the adaptive timer above scheduler noise even on loopback.
const minRTO = 20 * time.Millisecond

// floorHold is how many clean round trips a floor raised by a spurious resend (see
// onDuplicateAck) holds before it halves. Counted in round trips, not seconds: on a loaded host,
// where pauses come every few dozen blocks, the floor stays up; on a quiet one 256 round trips
// pass in milliseconds and real loss is again recovered at once.
const floorHold = 256

// action tells the driver what to put on the wire after an event.
type action struct {
	sendOACK   bool  // (re)send the OACK
	from, to   int64 // (re)send DATA blocks [from, to), absolute 1-based block numbers
	retransmit bool  // the packets were sent before (counts into metrics)
	done       bool  // the final block was acknowledged: the transfer succeeded
	timedOut   bool  // retries exhausted: send ERROR 0 "timeout" and drop the transfer
}

// sender is the pure state machine of one windowed read transfer (RFC 1350 + RFC 7440).
// It knows nothing about sockets or wall clocks: the driver feeds it ACKs and timeouts
// with the current time and sends what it returns. Block numbers are tracked as absolute
// int64 values so that the 16-bit wire numbers may wrap freely.
//
// Unit 0 is the OACK (when options were accepted); units 1..nblocks are DATA blocks.
type sender struct {
	size    int64
	blksize int
	window  int
	nblocks int64 // size/blksize + 1: the last block is always shorter than blksize

	base int64 // first unacknowledged unit
	next int64 // first unit after the current window

	maxRTO time.Duration // negotiated timeout or the server default; also the backoff cap
	// afterAck is the maxRTO to use once the client has acknowledged something; until then
	// maxRTO may be held shorter (see leash). 0: no leash.
	afterAck time.Duration
	acked    bool          // the client has acknowledged the OACK or a block: it is really there
	rto      time.Duration // current retransmit timeout
	srtt     time.Duration
	rttvar   time.Duration
	haveRTT  bool
	retries  int // allowed consecutive full-length timeouts
	strikes  int // consecutive timeouts that waited the full maxRTO

	sentAt    time.Time // when the current window was sent
	firstSent time.Time // when the current window was first sent, before any resend
	resent    bool      // the current window is a retransmission: no RTT sample (Karn)
	deadline  time.Time // when onTimeout is due

	// Spurious resend detection (see onDuplicateAck): the last block of the window resent after
	// the last timeout, once acknowledged (0: none); how long after its first sending; the
	// blocks of that window; and the duplicate ACKs of it seen since.
	resentBlock int64
	resentDelay time.Duration
	resentSize  int64
	dupAcks     int64
	floor       time.Duration // the RTO's lower bound: minRTO, raised by spurious resends
	clean       int           // clean round trips since floor was last raised or halved

	retransmits int64 // blocks resent, for logs and metrics
	spurious    int64 // resends the client showed it did not need
}

func newSender(size int64, blksize, window int, oack bool, timeout time.Duration, retries int) *sender {
	s := &sender{
		size:    size,
		blksize: blksize,
		window:  window,
		nblocks: size/int64(blksize) + 1,
		maxRTO:  timeout,
		rto:     timeout,
		retries: retries,
		base:    1,
		floor:   minRTO,
	}
	if oack {
		s.base = 0
	}
	s.next = s.base
	return s
}

// leash caps the timeout until the client's first ACK. A request with a spoofed source never
// gets one, so its transfer gives up after Retries of d instead of Retries of the negotiated
// timeout (up to 255 s each).
func (s *sender) leash(d time.Duration) {
	if s.acked || d >= s.maxRTO {
		return
	}
	s.afterAck = s.maxRTO
	s.maxRTO = d
	s.rto = min(s.rto, d)
}

// blockRange returns the byte range [off, end) of data block n (1-based).
func (s *sender) blockRange(n int64) (off, end int64) {
	off = (n - 1) * int64(s.blksize)
	end = min(off+int64(s.blksize), s.size)
	return off, end
}

// start returns the first packets of the transfer.
func (s *sender) start(now time.Time) action {
	return s.sendWindow(now, false)
}

// sendWindow (re)sends the window beginning at base.
func (s *sender) sendWindow(now time.Time, retransmit bool) action {
	s.sentAt = now
	if !retransmit {
		s.firstSent = now
	}
	s.resent = retransmit
	s.deadline = now.Add(s.rto)
	if s.base == 0 {
		// Nothing but the OACK until the client acknowledges it with ACK 0.
		s.next = 1
		return action{sendOACK: true, retransmit: retransmit}
	}
	to := min(s.base+int64(s.window), s.nblocks+1)
	s.next = to
	if retransmit {
		s.retransmits += to - s.base
	}
	return action{from: s.base, to: to, retransmit: retransmit}
}

// onAck handles an ACK carrying wire block number blk.
func (s *sender) onAck(now time.Time, blk uint16) action {
	if s.next <= s.base {
		return action{}
	}
	// Map the 16-bit number onto the outstanding range [base, next). A window holds at
	// most 65535 units, so at most one absolute number in the range matches.
	k := s.base + int64(blk-uint16(s.base))
	if k >= s.next {
		// A duplicate of the last acknowledged block, an older (stale) ACK, or one for a
		// block never sent. Sending nothing for them is what prevents the Sorcerer's
		// Apprentice syndrome.
		if blk == uint16(s.base-1) {
			s.onDuplicateAck()
		}
		return action{}
	}
	if !s.acked {
		s.acked = true
		if s.afterAck > 0 {
			s.maxRTO = s.afterAck
		}
	}
	s.resentBlock = 0
	if s.resent {
		// Karn: no RTT sample from a resent window, and its backed-off timer stays for the
		// next window, which gives a clean sample.
		if k >= 1 && k == s.next-1 { // the whole resent window acknowledged
			s.resentBlock, s.resentDelay, s.resentSize, s.dupAcks = k, now.Sub(s.firstSent), s.next-s.base, 0
		}
	} else {
		if s.clean++; s.clean >= floorHold && s.floor > minRTO {
			s.floor, s.clean = max(s.floor/2, minRTO), 0
		}
		s.sample(now.Sub(s.sentAt))
		s.rto = s.currentRTO()
	}
	s.strikes = 0
	s.base = k + 1
	if k == s.nblocks {
		return action{done: true}
	}
	// RFC 7440: the next window starts right after the acknowledged block, whether the ACK
	// closed the window or reported a gap in the middle of it.
	return s.sendWindow(now, false)
}

// onDuplicateAck handles another ACK of the last acknowledged block. When that block ended a
// window resent after a timeout, one more ACK of it per block of the window tells the resend
// was spurious: every copy reached a client that already had the window and acknowledged each
// copy, as iPXE and EDK2 do, and in lock-step the BSD client tftp-hpa comes from (busybox's
// does not: then a pause costs a resend as before). It is the idea of RFC 3708's DSACK. A
// block lost in the next window makes fewer such ACKs (at most window-1 blocks follow it), so
// in lock-step one duplicate is proof. The timer fired on a pause of the client or of this host,
// not on loss, and would fire on the next pause again, since Karn's rule keeps such slow round
// trips out of the RTT estimate. So the RTO's floor rises to twice that round trip (Eifel's
// response, RFC 4015: trust the late original), and holds for floorHold round trips.
func (s *sender) onDuplicateAck() {
	if s.resentBlock == 0 || s.resentBlock != s.base-1 {
		return
	}
	if s.dupAcks++; s.dupAcks < s.resentSize {
		return
	}
	s.resentBlock = 0
	s.spurious += s.resentSize
	s.floor, s.clean = min(max(s.floor, 2*s.resentDelay), s.maxRTO), 0
	// The window in flight was sent with the old timer: give it the new one.
	s.rto = max(s.rto, s.currentRTO())
	s.deadline = s.sentAt.Add(s.rto)
}

// onRequestAgain handles a copy of the request that started the transfer, from the peer: the
// client retransmitted it because our first reply was lost or late. Until the client's first
// ACK it is answered the way a lost reply is, with the OACK or the first window again; the
// retransmit timer keeps running, so copies neither count as strikes nor keep a transfer
// that is never acknowledged alive. After the first ACK the copy is stale and ignored.
func (s *sender) onRequestAgain(now time.Time) action {
	if s.acked {
		return action{}
	}
	deadline := s.deadline
	a := s.sendWindow(now, true)
	s.deadline = deadline
	return a
}

// onTimeout handles expiry of the retransmit timer: resend the window from the first
// unacknowledged block with a doubled timer. Only timeouts that waited the full
// (negotiated or configured) timeout count against Retries, so the fast adaptive
// retransmits cannot make a briefly stalled client lose its transfer.
func (s *sender) onTimeout(now time.Time) action {
	if s.rto >= s.maxRTO {
		s.strikes++
		if s.strikes > s.retries {
			return action{timedOut: true}
		}
	}
	s.rto = min(2*s.rto, s.maxRTO)
	return s.sendWindow(now, true)
}

// sample folds one RTT measurement into srtt/rttvar (RFC 6298).
func (s *sender) sample(r time.Duration) {
	r = max(r, 0)
	if !s.haveRTT {
		s.srtt = r
		s.rttvar = r / 2
		s.haveRTT = true
		return
	}
	d := s.srtt - r
	if d < 0 {
		d = -d
	}
	s.rttvar = (3*s.rttvar + d) / 4
	s.srtt = (7*s.srtt + r) / 8
}

func (s *sender) currentRTO() time.Duration {
	if !s.haveRTT {
		return s.maxRTO
	}
	return min(max(s.srtt+4*s.rttvar, s.floor), s.maxRTO)
}
