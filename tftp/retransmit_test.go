package tftp

import (
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
