package tftp

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A copy of the request that started a transfer, arriving where the transfer listens (its own
// port, or the listener in single-port mode), is a retransmission: it is answered like a lost
// first reply before the first ACK, ignored after it, and never ends the transfer.
func TestRequestCopyIsRetransmission(t *testing.T) {
	for _, single := range []bool{false, true} {
		name := "per-transfer port"
		if single {
			name = "single port"
		}
		t.Run(name, func(t *testing.T) {
			// The retransmit timer is far off: every reply the test sees answers its packets.
			ts := startServer(t, Config{SinglePort: single, Timeout: 30 * time.Second})
			data := randomData(3000, 31)
			ts.AddFile("f", data)
			c := newRaw(t, ts.addr)

			// With options: the copy gets the OACK again.
			rrq := appendRRQ(nil, "f", "octet", option{"blksize", "1024"}, option{"tsize", "0"})
			c.send(c.srv, rrq)
			p, tid := c.mustRecv()
			if p.Op != opOACK {
				t.Fatalf("got %+v, want OACK", p)
			}
			c.send(tid, rrq)
			if p, from := c.mustRecv(); p.Op != opOACK || from.Port != tid.Port {
				t.Fatalf("request copy answered with %+v from %v, want the OACK again from %v", p, from, tid)
			}
			c.send(tid, appendAck(nil, 0))
			if p, _ := c.mustRecv(); p.Op != opDATA || p.Block != 1 {
				t.Fatalf("got %+v, want DATA 1", p)
			}
			// After the first ACK a copy is stale: ignored (the sender's unit test shows it
			// sends nothing), and the transfer goes on. Once the client has answered, the
			// timer adapts to the loopback RTT: earlier blocks may come again.
			c.send(tid, rrq)
			c.send(tid, appendAck(nil, 1))
			for blk := uint16(2); blk <= 3; blk++ {
				c.expectData(blk)
				c.send(tid, appendAck(nil, blk))
			}

			// Without options: the copy gets the first window again.
			c2 := newRaw(t, ts.addr)
			rrq2 := appendRRQ(nil, "f", "octet")
			c2.send(c2.srv, rrq2)
			p, tid2 := c2.mustRecv()
			if p.Op != opDATA || p.Block != 1 {
				t.Fatalf("got %+v, want DATA 1", p)
			}
			c2.send(tid2, rrq2)
			if p, _ := c2.mustRecv(); p.Op != opDATA || p.Block != 1 {
				t.Fatalf("request copy answered with %+v, want DATA 1 again", p)
			}
			for blk := uint16(1); blk <= 6; blk++ {
				c2.send(tid2, appendAck(nil, blk))
				if blk < 6 {
					c2.expectData(blk + 1)
				}
			}
			waitFor(t, ts.reg, func() bool {
				return counter(t, ts.reg, "netbootd_tftp_transfers_completed_total", "") == 2
			})
			if n := counter(t, ts.reg, "netbootd_tftp_transfers_failed_total", ""); n != 0 {
				t.Errorf("%v transfers failed", n)
			}
			if n := counter(t, ts.reg, "netbootd_tftp_transfers_started_total", ""); n != 2 {
				t.Errorf("%v transfers started, want 2 (copies start none)", n)
			}
		})
	}
}

// Any other request on a transfer's port still ends it with ERROR 4.
func TestOtherRequestOnTransferPortEndsIt(t *testing.T) {
	ts := startServer(t, Config{Timeout: 30 * time.Second})
	ts.AddFile("f", randomData(3000, 32))
	ts.AddFile("g", []byte("other"))
	for _, pkt := range [][]byte{
		appendRRQ(nil, "g", "octet"),                            // a different file
		appendRRQ(nil, "f", "octet", option{"blksize", "1024"}), // the same file, other options
		append([]byte{0, byte(opWRQ)}, "f\x00octet\x00"...),     // a write
		append([]byte{0, byte(opDATA), 0, 1}, "unexpected"...),  // data to a reader
	} {
		c := newRaw(t, ts.addr)
		c.send(c.srv, appendRRQ(nil, "f", "octet"))
		p, tid := c.mustRecv()
		if p.Op != opDATA {
			t.Fatalf("got %+v", p)
		}
		c.send(tid, pkt)
		c.expectError(errIllegalOp, "illegal")
	}
	waitFor(t, ts.reg, func() bool {
		return counter(t, ts.reg, "netbootd_tftp_transfers_failed_total", "bad_request") == 4
	})
}

// expectData waits for DATA blk, skipping retransmissions of earlier blocks.
func (c *rawClient) expectData(blk uint16) packet {
	c.t.Helper()
	for {
		p, _ := c.mustRecv()
		if p.Op == opDATA && p.Block == blk {
			return p
		}
		if p.Op != opDATA || p.Block > blk {
			c.t.Fatalf("got %+v, want DATA %d", p, blk)
		}
	}
}

// A copy of a write request on the upload's port is answered with the server's last packet
// (ACK 0 at first) and never ends the upload.
func TestWriteRequestCopy(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, Config{UploadDir: dir, Timeout: 30 * time.Second})
	c := newRaw(t, ts.addr)
	wrq := append([]byte{0, byte(opWRQ)}, "up.bin\x00octet\x00"...)
	c.send(c.srv, wrq)
	p, tid := c.mustRecv()
	if p.Op != opACK || p.Block != 0 {
		t.Fatalf("got %+v, want ACK 0", p)
	}
	c.send(tid, wrq)
	if p, _ := c.mustRecv(); p.Op != opACK || p.Block != 0 {
		t.Fatalf("request copy answered with %+v, want ACK 0 again", p)
	}
	c.send(tid, append([]byte{0, byte(opDATA), 0, 1}, "hello"...))
	if p, _ := c.mustRecv(); p.Op != opACK || p.Block != 1 {
		t.Fatalf("got %+v, want ACK 1", p)
	}
	waitFor(t, ts.reg, func() bool {
		return counter(t, ts.reg, "netbootd_tftp_transfers_completed_total", "") == 1
	})
	if got, err := os.ReadFile(filepath.Join(dir, "up.bin")); err != nil || string(got) != "hello" {
		t.Fatalf("stored %q, %v", got, err)
	}
}

// A lock-step client that pauses (it holds its ACK until the server has resent the block four
// times, then acknowledges every copy, as iPXE does) shows the server those resends were
// spurious: a later pause half as long, after a clean round trip, gets no resend. A block
// really lost after that is still resent and the transfer completes. The pauses are the client's, measured by the client;
// the server's raised timer cannot fire before twice the first pause, however loaded the host.
func TestTFTPRTOSpuriousResendNotRepeated(t *testing.T) {
	ts := startServer(t, Config{Timeout: 20 * time.Second})
	data := randomData(10*512+100, 47) // blocks 1-10 full, block 11 has 100 bytes
	ts.AddFile("f", data)
	c := newRaw(t, ts.addr)
	const wait = 60 * time.Second // for a packet the server owes: generous on a starved host
	next := func(tid *net.UDPAddr) (packet, time.Time) {
		t.Helper()
		p, from, err := c.recv(wait)
		if err != nil {
			t.Fatal(err)
		}
		if p.Op != opDATA || from.Port != tid.Port {
			t.Fatalf("got %+v from %v, want DATA from %v", p, from, tid)
		}
		return p, time.Now()
	}
	var got []byte
	take := func(p packet) { got = append(got, p.Data...) }

	c.send(c.srv, appendRRQ(nil, "f", "octet"))
	p, tid, err := c.recv(wait)
	if err != nil {
		t.Fatal(err)
	}
	if p.Op != opDATA || p.Block != 1 {
		t.Fatalf("got %+v, want DATA 1", p)
	}
	take(p)
	for blk := uint16(1); blk <= 3; blk++ { // quick round trips first
		c.send(tid, appendAck(nil, blk))
		p, _ = next(tid)
		for p.Block <= blk { // a resend the host's load caused: skip it
			p, _ = next(tid)
		}
		if p.Block != blk+1 {
			t.Fatalf("got DATA %d, want %d", p.Block, blk+1)
		}
		take(p)
	}

	// Block 4: the client pauses until four copies more have come, then ACKs every copy.
	first := time.Now()
	copies := 1
	for copies < 5 {
		if p, _ = next(tid); p.Block != 4 {
			t.Fatalf("got DATA %d during the pause, want copies of 4", p.Block)
		}
		copies++
	}
	pause := time.Since(first)
	for range copies {
		c.send(tid, appendAck(nil, 4))
	}
	for p.Block == 4 {
		p, _ = next(tid)
	}
	if p.Block != 5 {
		t.Fatalf("got DATA %d, want 5", p.Block)
	}
	take(p)

	// Block 5 is acknowledged at once: a clean round trip, which ends Karn's backed-off timer.
	c.send(tid, appendAck(nil, 5))
	for p.Block <= 5 {
		p, _ = next(tid)
	}
	if p.Block != 6 {
		t.Fatalf("got DATA %d, want 6", p.Block)
	}
	take(p)

	// Block 6: a pause half as long as the first. Any packet within it would be a copy of 6.
	c.conn.SetReadDeadline(time.Now().Add(pause / 2))
	if n, _, err := c.conn.ReadFromUDP(c.buf); err == nil {
		q, _ := parsePacket(c.buf[:n])
		t.Fatalf("got op %d block %d during a %v pause after a spurious resend on a %v one", q.Op, q.Block, pause/2, pause)
	}
	c.send(tid, appendAck(nil, 6))

	// Block 7 is lost: the client waits for the resend and acknowledges it once.
	if p, _ = next(tid); p.Block != 7 {
		t.Fatalf("got DATA %d, want 7", p.Block)
	}
	if p, _ = next(tid); p.Block != 7 {
		t.Fatalf("got DATA %d, want 7 resent", p.Block)
	}
	take(p)
	for blk := uint16(7); ; blk++ {
		c.send(tid, appendAck(nil, blk))
		if blk == 11 {
			break
		}
		for p.Block <= blk {
			p, _ = next(tid)
		}
		take(p)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, not the file's %d", len(got), len(data))
	}
	waitFor(t, ts.reg, func() bool {
		return counter(t, ts.reg, "netbootd_tftp_transfers_completed_total", "") == 1
	})
	if n := counter(t, ts.reg, "netbootd_tftp_spurious_retransmits_total", ""); n != 1 {
		t.Errorf("spurious retransmits = %v, want 1 (the pause on block 4; block 7 was lost)", n)
	}
	if n := counter(t, ts.reg, "netbootd_tftp_retransmitted_blocks_total", ""); n < 5 {
		t.Errorf("retransmitted blocks = %v, want at least 5 (four copies of 4, one of 7)", n)
	}
}
