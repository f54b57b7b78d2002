package tftp

import (
	"bytes"
	"net"
	"sync"
	"testing"
	"time"
)

// A client that never acknowledges gets the server's Timeout, not the 255 s it negotiated.
func TestUnconfirmedTimeoutIsCapped(t *testing.T) {
	ts := startServer(t, Config{Timeout: 100 * time.Millisecond, Retries: 2})
	ts.AddFile("f", []byte("x"))
	c := newRaw(t, ts.addr)
	c.send(c.srv, appendRRQ(nil, "f", "octet", option{"timeout", "255"}))
	for i := 0; i < 3; i++ { // the OACK and two retransmissions, each after the capped timeout
		if p, _ := c.mustRecv(); p.Op != opOACK {
			t.Fatalf("got %+v, want OACK", p)
		}
	}
	c.expectError(errNotDefined, "timeout")
	waitFor(t, ts.reg, func() bool {
		return counter(t, ts.reg, "netbootd_tftp_transfers_failed_total", "timeout") == 1 &&
			counter(t, ts.reg, "netbootd_tftp_unconfirmed_transfers", "") == 0
	})
}

// Unacknowledged transfers are capped per client address: over the cap a request is dropped
// unanswered, other addresses are unaffected, and a transfer that is acknowledged frees its
// place for the next request.
func TestUnconfirmedPerClient(t *testing.T) {
	ts := startServer(t, Config{MaxUnconfirmedPerClient: 2, Timeout: 30 * time.Second})
	ts.AddFile("f", randomData(2000, 41))
	var cs []*rawClient
	var tids []*net.UDPAddr
	for i := 0; i < 2; i++ {
		c := newRaw(t, ts.addr)
		c.send(c.srv, appendRRQ(nil, "f", "octet"))
		p, tid := c.mustRecv()
		if p.Op != opDATA {
			t.Fatalf("got %+v", p)
		}
		cs, tids = append(cs, c), append(tids, tid)
	}
	third := newRaw(t, ts.addr)
	third.send(third.srv, appendRRQ(nil, "f", "octet"))
	waitFor(t, ts.reg, func() bool {
		return counter(t, ts.reg, "netbootd_tftp_admission_refused_total", "unconfirmed_per_client") == 1
	})
	if p, _, err := third.recv(100 * time.Millisecond); err == nil {
		t.Fatalf("a request over the cap was answered: %+v", p)
	}
	other := newRawFrom(t, ts.addr, net.IPv4(127, 0, 0, 2))
	other.send(other.srv, appendRRQ(nil, "f", "octet"))
	if p, _ := other.mustRecv(); p.Op != opDATA {
		t.Fatalf("another address: got %+v", p)
	}
	// The first client acknowledges: its transfer is confirmed, the third one's retry is served.
	cs[0].send(tids[0], appendAck(nil, 1))
	cs[0].expectData(2)
	third.send(third.srv, appendRRQ(nil, "f", "octet"))
	if p, _ := third.mustRecv(); p.Op != opDATA {
		t.Fatalf("after a confirmation: got %+v", p)
	}
	if n := counter(t, ts.reg, "netbootd_tftp_unconfirmed_transfers", ""); n != 3 {
		t.Errorf("unconfirmed = %v, want 3", n)
	}
}

// When the unconfirmed transfers reach their total, one gives way to a new request: the oldest
// of the address holding the most, not a lone client's older one; confirmed transfers are
// never touched.
func TestUnconfirmedEviction(t *testing.T) {
	ts := startServer(t, Config{MaxUnconfirmed: 3, MaxTransfers: 8, Timeout: 30 * time.Second})
	ts.AddFile("f", randomData(2000, 42))
	start := func(ip byte) (*rawClient, *net.UDPAddr) {
		c := newRawFrom(t, ts.addr, net.IPv4(127, 0, 0, ip))
		c.send(c.srv, appendRRQ(nil, "f", "octet"))
		p, tid := c.mustRecv()
		if p.Op != opDATA || p.Block != 1 {
			t.Fatalf("127.0.0.%d: got %+v", ip, p)
		}
		return c, tid
	}
	confirmed, ctid := start(2)
	confirmed.send(ctid, appendAck(nil, 1))
	confirmed.expectData(2)
	lone, ltid := start(3)
	start(4) // 127.0.0.4's first: the one to give way
	second, stid := start(4)
	start(5) // the total is reached
	waitFor(t, ts.reg, func() bool {
		return counter(t, ts.reg, "netbootd_tftp_admission_refused_total", "unconfirmed_evicted") == 1 &&
			counter(t, ts.reg, "netbootd_tftp_transfers_failed_total", "canceled") == 1
	})
	for _, c := range []struct {
		c   *rawClient
		tid *net.UDPAddr
		blk uint16
	}{{lone, ltid, 1}, {second, stid, 1}, {confirmed, ctid, 2}} {
		c.c.send(c.tid, appendAck(nil, c.blk))
		c.c.expectData(c.blk + 1)
	}
}

// A flood of never-acknowledged requests with timeout 255 (the issue's: many ports on each of
// several addresses) holds at most MaxUnconfirmedPerClient slots per address, and a real
// client still downloads meanwhile.
func TestSpoofedFloodLeavesRoom(t *testing.T) {
	ts := startServer(t, Config{MaxTransfers: 256, Timeout: 500 * time.Millisecond})
	data := randomData(200_000, 43)
	ts.AddFile("f", data)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	const addrs, ports = 12, 8
	for a := 0; a < addrs; a++ {
		for range ports {
			c := newRawFrom(t, ts.addr, net.IPv4(127, 0, 1, byte(a+1)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				rrq := appendRRQ(nil, "f", "octet", option{"timeout", "255"})
				tick := time.NewTicker(500 * time.Millisecond)
				defer tick.Stop()
				for {
					// Copies are ignored while the request's transfer lives; once it has
					// given up, the next one starts another.
					if _, err := c.conn.WriteToUDP(rrq, c.srv); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
		}
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
	waitFor(t, ts.reg, func() bool {
		return counter(t, ts.reg, "netbootd_tftp_admission_refused_total", "unconfirmed_per_client") >= addrs*(ports-4)
	})
	for i := 0; i < 3; i++ {
		got, _, _, err := pinFetch(pinClient(t, ts.addr), "f", "octet")
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("download %d during the flood: %d bytes, %v", i, len(got), err)
		}
	}
	if n := counter(t, ts.reg, "netbootd_tftp_unconfirmed_transfers", ""); n > addrs*4 {
		t.Errorf("%v unconfirmed transfers, want at most %d", n, addrs*4)
	}
	if n := counter(t, ts.reg, "netbootd_tftp_admission_refused_total", "busy"); n != 0 {
		t.Errorf("%v requests refused as busy", n)
	}
}
