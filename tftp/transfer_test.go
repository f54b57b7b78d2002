package tftp

import (
	"bytes"
	"math/rand"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func wantAction(t *testing.T, got, want action) {
	t.Helper()
	if got != want {
		t.Fatalf("action = %+v, want %+v", got, want)
	}
}

func TestSenderNoOptions(t *testing.T) {
	// 20 bytes at blksize 8: blocks 1, 2 full, block 3 has 4 bytes.
	s := newSender(20, 8, 1, false, time.Second, 5)
	wantAction(t, s.start(t0), action{from: 1, to: 2})
	wantAction(t, s.onAck(t0.Add(time.Millisecond), 1), action{from: 2, to: 3})
	wantAction(t, s.onAck(t0.Add(2*time.Millisecond), 2), action{from: 3, to: 4})
	if off, end := s.blockRange(3); off != 16 || end != 20 {
		t.Fatalf("block 3 = [%d,%d)", off, end)
	}
	wantAction(t, s.onAck(t0.Add(3*time.Millisecond), 3), action{done: true})
}

func TestSenderOACK(t *testing.T) {
	s := newSender(100, 512, 4, true, time.Second, 5)
	wantAction(t, s.start(t0), action{sendOACK: true})
	// ACK 1 before ACK 0 was never sent: ignored.
	wantAction(t, s.onAck(t0, 1), action{})
	// Lost OACK: resent on timeout.
	wantAction(t, s.onTimeout(t0.Add(time.Second)), action{sendOACK: true, retransmit: true})
	wantAction(t, s.onAck(t0.Add(1100*time.Millisecond), 0), action{from: 1, to: 2})
	// A duplicate ACK 0 (the client's own retransmission) is ignored.
	wantAction(t, s.onAck(t0.Add(1101*time.Millisecond), 0), action{})
	wantAction(t, s.onAck(t0.Add(1102*time.Millisecond), 1), action{done: true})
}

func TestSenderFinalEmptyBlock(t *testing.T) {
	s := newSender(16, 8, 8, false, time.Second, 5)
	// Blocks 1 and 2 are full, block 3 is empty and is what ends the transfer.
	wantAction(t, s.start(t0), action{from: 1, to: 4})
	if off, end := s.blockRange(3); off != 16 || end != 16 {
		t.Fatalf("block 3 = [%d,%d)", off, end)
	}
	wantAction(t, s.onAck(t0, 2), action{from: 3, to: 4})
	wantAction(t, s.onAck(t0, 3), action{done: true})

	empty := newSender(0, 512, 1, false, time.Second, 5)
	wantAction(t, empty.start(t0), action{from: 1, to: 2})
	wantAction(t, empty.onAck(t0, 1), action{done: true})
}

func TestSenderLostDataWindow(t *testing.T) {
	// 10 full blocks + empty final block 11, window 4.
	s := newSender(80, 8, 4, false, time.Second, 5)
	wantAction(t, s.start(t0), action{from: 1, to: 5})
	// Block 3 was lost: the client acknowledges 2; the next window starts at 3 (k+1).
	wantAction(t, s.onAck(t0.Add(time.Millisecond), 2), action{from: 3, to: 7})
	// Blocks 4 and 5 from the old window arrive late; the client already ACKed 2 again:
	// that duplicate must not trigger anything.
	wantAction(t, s.onAck(t0.Add(2*time.Millisecond), 2), action{})
	wantAction(t, s.onAck(t0.Add(3*time.Millisecond), 6), action{from: 7, to: 11})
	// Stale ACK for an old block.
	wantAction(t, s.onAck(t0.Add(4*time.Millisecond), 1), action{})
	wantAction(t, s.onAck(t0.Add(4*time.Millisecond), 4), action{})
	// ACK for a block not sent yet.
	wantAction(t, s.onAck(t0.Add(4*time.Millisecond), 12), action{})
	wantAction(t, s.onAck(t0.Add(5*time.Millisecond), 10), action{from: 11, to: 12})
	wantAction(t, s.onAck(t0.Add(6*time.Millisecond), 11), action{done: true})
	if s.retransmits != 0 {
		t.Fatalf("retransmits = %d, want 0", s.retransmits)
	}
}

func TestSenderLostDataTimeout(t *testing.T) {
	s := newSender(100, 8, 1, false, time.Second, 5)
	wantAction(t, s.start(t0), action{from: 1, to: 2})
	if !s.deadline.Equal(t0.Add(time.Second)) {
		t.Fatalf("deadline = %v", s.deadline.Sub(t0))
	}
	wantAction(t, s.onTimeout(t0.Add(time.Second)), action{from: 1, to: 2, retransmit: true})
	if s.retransmits != 1 {
		t.Fatalf("retransmits = %d", s.retransmits)
	}
}

func TestSenderLostAck(t *testing.T) {
	s := newSender(80, 8, 4, false, time.Second, 5)
	now := t0
	wantAction(t, s.start(now), action{from: 1, to: 5})
	// ACK 4 is lost: the whole window goes again from the first unacknowledged block.
	now = s.deadline
	wantAction(t, s.onTimeout(now), action{from: 1, to: 5, retransmit: true})
	// The client answers the duplicates with ACK 4 again; the first one moves on...
	now = now.Add(time.Millisecond)
	wantAction(t, s.onAck(now, 4), action{from: 5, to: 9})
	// ...and any further copy of it is ignored (no Sorcerer's Apprentice).
	wantAction(t, s.onAck(now, 4), action{})
	wantAction(t, s.onAck(now, 4), action{})
	if s.retransmits != 4 {
		t.Fatalf("retransmits = %d, want 4", s.retransmits)
	}
}

func TestSenderRetriesExhausted(t *testing.T) {
	s := newSender(100, 8, 2, true, time.Second, 3)
	now := t0
	wantAction(t, s.start(now), action{sendOACK: true})
	for i := 0; i < 3; i++ {
		now = s.deadline
		wantAction(t, s.onTimeout(now), action{sendOACK: true, retransmit: true})
	}
	wantAction(t, s.onTimeout(s.deadline), action{timedOut: true})

	// Also after RTT adaptation: fast retransmits back off to the full timeout, then
	// Retries full-length waits are allowed.
	s = newSender(1000, 8, 1, false, time.Second, 2)
	now = t0
	s.start(now)
	now = now.Add(2 * time.Millisecond)
	s.onAck(now, 1)
	if got := s.deadline.Sub(now); got != minRTO {
		t.Fatalf("rto after a 2ms RTT = %v, want %v", got, minRTO)
	}
	var waits []time.Duration
	for {
		d := s.deadline.Sub(now)
		now = s.deadline
		a := s.onTimeout(now)
		waits = append(waits, d)
		if a.timedOut {
			break
		}
		if a.from != 2 || a.to != 3 || !a.retransmit {
			t.Fatalf("timeout action = %+v", a)
		}
		if len(waits) > 20 {
			t.Fatal("never gives up")
		}
	}
	want := []time.Duration{20, 40, 80, 160, 320, 640, 1000, 1000, 1000}
	if len(waits) != len(want) {
		t.Fatalf("waits = %v", waits)
	}
	for i := range want {
		if waits[i] != want[i]*time.Millisecond {
			t.Fatalf("waits = %v, want %v ms", waits, want)
		}
	}
}

func TestSenderRTT(t *testing.T) {
	s := newSender(1<<20, 512, 1, false, 2*time.Second, 5)
	now := t0
	s.start(now)
	// First sample 10ms: srtt 10ms, rttvar 5ms, rto 30ms.
	now = now.Add(10 * time.Millisecond)
	s.onAck(now, 1)
	if got := s.deadline.Sub(now); got != 30*time.Millisecond {
		t.Fatalf("rto = %v, want 30ms", got)
	}
	// Karn: the ACK for a retransmitted window gives no sample.
	now = s.deadline
	s.onTimeout(now)
	now = now.Add(500 * time.Millisecond)
	s.onAck(now, 2)
	if s.srtt != 10*time.Millisecond {
		t.Fatalf("srtt = %v after retransmission, want unchanged", s.srtt)
	}
	// A very slow peer is clamped to the negotiated timeout.
	for i := uint16(3); i < 20; i++ {
		now = now.Add(5 * time.Second)
		s.onAck(now, i)
	}
	if got := s.deadline.Sub(now); got != 2*time.Second {
		t.Fatalf("rto = %v, want the 2s cap", got)
	}
}

func TestSenderRollover(t *testing.T) {
	// 600 KB at blksize 8 is 75000 full blocks plus an empty final block: the wire
	// number wraps from 65535 to 0.
	s := newSender(600_000, 8, 16, false, time.Second, 5)
	a := s.start(t0)
	var acked int64
	for !a.done {
		if a.to == 0 {
			t.Fatalf("stalled at %d: %+v", acked, a)
		}
		acked = a.to - 1
		a = s.onAck(t0, uint16(acked))
	}
	if acked != 75001 {
		t.Fatalf("last block %d, want 75001", acked)
	}

	// Around the wrap: a window straddling 65535 → 0, with a gap reported at wire 65535.
	s = newSender(600_000, 8, 4, false, time.Second, 5)
	s.start(t0)
	s.base, s.next = 65533, 65533
	wantAction(t, s.sendWindow(t0, false), action{from: 65533, to: 65537})
	wantAction(t, s.onAck(t0, 65535), action{from: 65536, to: 65540})
	// Wire 65535 again is now the duplicate of the last acknowledged block.
	wantAction(t, s.onAck(t0, 65535), action{})
	// Wire 1 is absolute 65537.
	wantAction(t, s.onAck(t0, 1), action{from: 65538, to: 65542})
	// Wire 0 (absolute 65536) is stale now.
	wantAction(t, s.onAck(t0, 0), action{})
}

// simPeer is an RFC 7440 receiver: it acknowledges every windowsize blocks, on the final
// block, and on a gap (with the last block received in order).
type simPeer struct {
	blksize, window int
	got             bytes.Buffer
	expect          int64 // absolute block expected next
	inWindow        int
	done            bool
}

// receive handles one DATA block; it returns the ACK to send (wire number) or -1.
func (p *simPeer) receive(abs int64, data []byte) int {
	if abs != p.expect {
		if abs > p.expect {
			p.inWindow = 0
			return int(uint16(p.expect - 1))
		}
		// An old duplicate (our ACK was lost): acknowledge again what we have.
		return int(uint16(p.expect - 1))
	}
	p.got.Write(data)
	p.expect++
	p.inWindow++
	if len(data) < p.blksize {
		p.done = true
		return int(uint16(abs))
	}
	if p.inWindow == p.window {
		p.inWindow = 0
		return int(uint16(abs))
	}
	return -1
}

// TestSenderSimulatedLoss runs the state machine against simPeer over a lossy,
// delay-free link with a fake clock.
func TestSenderSimulatedLoss(t *testing.T) {
	data := make([]byte, 200_000)
	rand.New(rand.NewSource(1)).Read(data)
	for _, w := range []int{1, 4, 16} {
		rng := rand.New(rand.NewSource(int64(w)))
		s := newSender(int64(len(data)), 8, w, false, time.Second, 5)
		peer := &simPeer{blksize: 8, window: w, expect: 1}
		now := t0
		a := s.start(now)
		steps := 0
		for !a.done {
			if a.timedOut {
				t.Fatalf("w=%d: timed out", w)
			}
			if steps++; steps > 1_000_000 {
				t.Fatalf("w=%d: no progress", w)
			}
			var acks []int
			for b := a.from; b < a.to; b++ {
				if rng.Intn(100) < 3 {
					continue // data lost
				}
				off, end := s.blockRange(b)
				if ack := peer.receive(b, data[off:end]); ack >= 0 && rng.Intn(100) >= 3 {
					acks = append(acks, ack)
				}
			}
			now = now.Add(time.Millisecond)
			a = action{}
			for _, k := range acks {
				if na := s.onAck(now, uint16(k)); na != (action{}) {
					a = na
				}
			}
			if a == (action{}) {
				now = s.deadline
				a = s.onTimeout(now)
			}
		}
		if !peer.done || !bytes.Equal(peer.got.Bytes(), data) {
			t.Fatalf("w=%d: received %d bytes, done=%v, mismatch", w, peer.got.Len(), peer.done)
		}
		if s.retransmits == 0 {
			t.Fatalf("w=%d: no retransmits at 3%% loss?", w)
		}
	}
}

// A copy of the request before the first ACK is answered like a lost first reply: the OACK, or
// the first window when no options were accepted. It moves no timer and counts no strike.
func TestSenderRequestAgain(t *testing.T) {
	s := newSender(100, 8, 4, true, time.Second, 1)
	wantAction(t, s.start(t0), action{sendOACK: true})
	wantAction(t, s.onRequestAgain(t0.Add(300*time.Millisecond)), action{sendOACK: true, retransmit: true})
	if !s.deadline.Equal(t0.Add(time.Second)) {
		t.Fatalf("a request copy moved the timer to %v", s.deadline.Sub(t0))
	}
	// Copies cannot keep an unacknowledged transfer alive: the timer still ends it.
	wantAction(t, s.onTimeout(s.deadline), action{sendOACK: true, retransmit: true})
	s.onRequestAgain(s.deadline.Add(-time.Millisecond))
	wantAction(t, s.onTimeout(s.deadline), action{timedOut: true})

	s = newSender(20, 8, 2, false, time.Second, 5)
	wantAction(t, s.start(t0), action{from: 1, to: 3})
	wantAction(t, s.onRequestAgain(t0.Add(time.Millisecond)), action{from: 1, to: 3, retransmit: true})
	// After the first ACK the copy is stale: nothing is sent.
	wantAction(t, s.onAck(t0.Add(2*time.Millisecond), 2), action{from: 3, to: 4})
	wantAction(t, s.onRequestAgain(t0.Add(3*time.Millisecond)), action{})
	wantAction(t, s.onAck(t0.Add(4*time.Millisecond), 3), action{done: true})
}

// Until the first ACK the timeout is the leash, whatever the client negotiated; the first
// ACK restores the negotiated timeout as the cap.
func TestSenderLeash(t *testing.T) {
	s := newSender(100, 8, 1, true, 255*time.Second, 2)
	s.leash(time.Second)
	wantAction(t, s.start(t0), action{sendOACK: true})
	if got := s.deadline.Sub(t0); got != time.Second {
		t.Fatalf("first timeout %v, want the 1s leash", got)
	}
	// An unacknowledged transfer gives up after Retries leash-long waits, not 255 s ones.
	for i := 0; i < 2; i++ {
		wantAction(t, s.onTimeout(s.deadline), action{sendOACK: true, retransmit: true})
	}
	if gaveUp := s.deadline; gaveUp.Sub(t0) != 3*time.Second {
		t.Fatalf("last wait ends at %v, want 3s", gaveUp.Sub(t0))
	}
	wantAction(t, s.onTimeout(s.deadline), action{timedOut: true})

	s = newSender(100, 8, 1, true, 255*time.Second, 2)
	s.leash(time.Second)
	s.start(t0)
	wantAction(t, s.onAck(t0.Add(10*time.Millisecond), 0), action{from: 1, to: 2})
	if s.maxRTO != 255*time.Second {
		t.Fatalf("after the first ACK the cap is %v, want the negotiated 255s", s.maxRTO)
	}
	// A leash longer than the negotiated timeout changes nothing.
	s = newSender(100, 8, 1, false, 2*time.Second, 2)
	s.leash(time.Minute)
	if s.start(t0); s.deadline.Sub(t0) != 2*time.Second {
		t.Fatalf("timeout %v, want 2s", s.deadline.Sub(t0))
	}
}

// A lock-step block resent on a pause of the client (both copies acknowledged) raises the
// timer's floor to twice that round trip, so the same pause does not cause another resend;
// a real loss afterwards is still resent and recovered, and is not taken for a spurious one.
func TestTFTPRTOSpuriousResendRaisesFloor(t *testing.T) {
	const ms = time.Millisecond
	s := newSender(100*8, 8, 1, false, 10*time.Second, 5)
	now := t0
	wantAction(t, s.start(now), action{from: 1, to: 2})
	for blk := int64(1); blk <= 3; blk++ { // quick round trips: the RTO sits at its floor
		now = now.Add(ms)
		wantAction(t, s.onAck(now, uint16(blk)), action{from: blk + 1, to: blk + 2})
	}
	if s.rto != minRTO {
		t.Fatalf("rto = %v after quick round trips, want the floor %v", s.rto, minRTO)
	}

	// Block 4: the client pauses 50 ms; the timer fires first and resends.
	sent4 := now
	wantAction(t, s.onTimeout(s.deadline), action{from: 4, to: 5, retransmit: true})
	// The client wakes: it acknowledges the first copy, then the second (as iPXE does).
	now = sent4.Add(50 * ms)
	wantAction(t, s.onAck(now, 4), action{from: 5, to: 6})
	if s.spurious != 0 {
		t.Fatalf("spurious = %d before the second ACK", s.spurious)
	}
	now = now.Add(ms / 10)
	wantAction(t, s.onAck(now, 4), action{}) // nothing sent for it: no Sorcerer's Apprentice
	if s.spurious != 1 || s.floor != 100*ms {
		t.Fatalf("spurious = %d, floor = %v; want 1 and 100ms (twice the 50 ms round trip)", s.spurious, s.floor)
	}
	if got := s.deadline.Sub(s.sentAt); got < 100*ms {
		t.Fatalf("block 5 in flight times out after %v, want the new floor 100ms", got)
	}
	// A third copy of the ACK changes nothing more.
	s.onAck(now, 4)
	if s.spurious != 1 {
		t.Fatalf("spurious = %d after a third ACK, want 1", s.spurious)
	}

	// The same 50 ms pause on block 5: its ACK comes before the timer.
	now = s.sentAt.Add(50 * ms)
	if !now.Before(s.deadline) {
		t.Fatalf("the timer (due %v after sending) would fire within the same 50 ms pause", s.deadline.Sub(s.sentAt))
	}
	wantAction(t, s.onAck(now, 5), action{from: 6, to: 7})

	// Block 6 is lost: resent when the timer fires; its one ACK recovers the transfer.
	wantAction(t, s.onTimeout(s.deadline), action{from: 6, to: 7, retransmit: true})
	now = s.sentAt.Add(ms)
	wantAction(t, s.onAck(now, 6), action{from: 7, to: 8})
	if s.retransmits != 2 || s.spurious != 1 {
		t.Fatalf("retransmits = %d, spurious = %d; want 2 and 1", s.retransmits, s.spurious)
	}
	// A late duplicate of ACK 5 (not the resent block) proves nothing.
	s.onAck(now, 5)
	if s.spurious != 1 || s.floor != 100*ms {
		t.Fatalf("a stale ACK changed spurious = %d, floor = %v", s.spurious, s.floor)
	}
}

// The raised floor halves after each floorHold clean round trips until it is back at minRTO,
// and never exceeds the negotiated timeout.
func TestTFTPRTOFloorDecaysAndIsCapped(t *testing.T) {
	const ms = time.Millisecond
	s := newSender(10000*8, 8, 1, false, 300*ms, 5)
	now := t0
	s.start(now)
	now = now.Add(ms)
	s.onAck(now, 1)
	// Block 2 resent, then both copies acknowledged 250 ms after the first: twice that is
	// above the 300 ms timeout, which caps the floor.
	sent := now
	s.onTimeout(s.deadline)
	now = sent.Add(250 * ms)
	s.onAck(now, 2)
	s.onAck(now, 2)
	blk := uint16(3)
	for _, want := range []time.Duration{300 * ms, 150 * ms, 75 * ms, 37500 * time.Microsecond, minRTO, minRTO} {
		if s.floor != want {
			t.Fatalf("floor = %v after %d clean round trips, want %v", s.floor, blk-3, want)
		}
		for range floorHold - 1 {
			now = now.Add(ms)
			s.onAck(now, blk)
			blk++
		}
		if s.floor != want {
			t.Fatalf("floor = %v one round trip before floorHold, want %v still", s.floor, want)
		}
		now = now.Add(ms)
		s.onAck(now, blk)
		blk++
	}
}

// Karn's rule: the ACK of a resent window gives no RTT sample and keeps the backed-off timer
// for the next window; that window's clean ACK brings the timer back to the estimate.
func TestTFTPRTOKarnKeepsBackoff(t *testing.T) {
	const ms = time.Millisecond
	s := newSender(100*8, 8, 1, false, 10*time.Second, 5)
	now := t0
	s.start(now)
	for blk := uint16(1); blk <= 3; blk++ {
		now = now.Add(ms)
		s.onAck(now, blk)
	}
	srtt := s.srtt
	wantAction(t, s.onTimeout(s.deadline), action{from: 4, to: 5, retransmit: true})
	now = s.sentAt.Add(ms)
	wantAction(t, s.onAck(now, 4), action{from: 5, to: 6})
	if s.srtt != srtt {
		t.Fatalf("srtt = %v after the ACK of a resent block, want %v unchanged", s.srtt, srtt)
	}
	if got := s.deadline.Sub(s.sentAt); got != 2*minRTO {
		t.Fatalf("next block's timer = %v, want the backed-off %v", got, 2*minRTO)
	}
	now = now.Add(ms)
	s.onAck(now, 5)
	if got := s.deadline.Sub(s.sentAt); got != minRTO {
		t.Fatalf("timer after a clean sample = %v, want %v", got, minRTO)
	}
}

// With a window, the resend was spurious when the resent window's last block is acknowledged
// again once per block of it; fewer duplicates may come from a block lost after the window
// (the client acknowledges what it has in order for each block after the gap).
func TestTFTPRTOWindowSpuriousNeedsEveryCopy(t *testing.T) {
	const ms = time.Millisecond
	s := newSender(100*8, 8, 4, false, 10*time.Second, 5)
	now := t0
	s.start(now)
	now = now.Add(ms)
	wantAction(t, s.onAck(now, 4), action{from: 5, to: 9})
	sent := now
	wantAction(t, s.onTimeout(s.deadline), action{from: 5, to: 9, retransmit: true})
	now = sent.Add(30 * ms)
	wantAction(t, s.onAck(now, 8), action{from: 9, to: 13})
	for range 3 { // what block 9 lost and 10-12 received would also cause
		wantAction(t, s.onAck(now, 8), action{})
	}
	if s.spurious != 0 || s.floor != minRTO {
		t.Fatalf("after 3 duplicates: spurious = %d, floor = %v; want 0 and %v", s.spurious, s.floor, minRTO)
	}
	wantAction(t, s.onAck(now, 8), action{})
	if s.spurious != 4 || s.floor != 60*ms {
		t.Fatalf("after 4 duplicates: spurious = %d, floor = %v; want 4 and 60ms", s.spurious, s.floor)
	}

	// A window resent because a block of it was really lost: the client had discarded what
	// followed the gap, acknowledges the resent window once, and the floor stays.
	l := newSender(100*8, 8, 4, false, 10*time.Second, 5)
	l.start(t0)
	wantAction(t, l.onAck(t0.Add(ms), 4), action{from: 5, to: 9})
	wantAction(t, l.onTimeout(l.deadline), action{from: 5, to: 9, retransmit: true})
	wantAction(t, l.onAck(l.sentAt.Add(ms), 8), action{from: 9, to: 13})
	wantAction(t, l.onAck(l.sentAt.Add(ms), 12), action{from: 13, to: 17})
	if l.spurious != 0 || l.floor != minRTO {
		t.Fatalf("real loss: spurious = %d, floor = %v; want 0 and %v", l.spurious, l.floor, minRTO)
	}
}
