package tftp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestLossyTransfer's windowed counterpart: through the same lossy proxy (3% of the packets
// dropped each way), windows at 4, 16 and 64 blocks, sent as GSO messages that the kernel cuts
// before the proxy's socket, arrive intact, on a blocking socket and through the netpoller;
// windows resent from the first unacknowledged block go as GSO messages too (never refused).
func TestLossyWindowedTransfer(t *testing.T) {
	t.Run("blocking socket", func(t *testing.T) { testLossyWindowed(t) })
	t.Run("netpoller", func(t *testing.T) { testLossyWindowed(t, viaNetpoller) })
}

func testLossyWindowed(t *testing.T, setup ...func(*Server)) {
	data := randomData(384<<10+333, 13)
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "kernel"), data)
	ts := startServer(t, Config{Root: root, MaxWindow: 64}, setup...)
	seed := int64(0)
	for _, window := range []int{4, 16, 64} {
		for _, blksize := range []int{512, 1468} {
			seed++
			proxy := newLossyProxy(t, ts.addr, 3, seed)
			got, err := fetchLossy(t, proxy.front.LocalAddr().String(), "kernel", blksize, window)
			if err != nil {
				t.Fatalf("windowsize %d blksize %d: %v", window, blksize, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("windowsize %d blksize %d: %d bytes of %d, content differs", window, blksize, len(got), len(data))
			}
		}
	}
	if got := counter(t, ts.reg, "netbootd_tftp_retransmitted_blocks_total", ""); got == 0 {
		t.Error("no retransmissions counted at 3% loss")
	}
	if got := counter(t, ts.reg, "netbootd_tftp_gso_refused_total", ""); got != 0 {
		t.Errorf("GSO refused for %v transfers over loopback", got)
	}
}

// fetchLossy downloads name as an RFC 7440 client that survives loss: it acknowledges each
// full window and the final block, the last block in order on a gap, and on a quiet spell of
// 100 ms asks again (the request before the OACK, else the last block in order).
func fetchLossy(t *testing.T, srv, name string, blksize, window int) ([]byte, error) {
	t.Helper()
	c := newRaw(t, srv)
	req := appendRRQ(nil, name, "octet", option{"blksize", fmt.Sprint(blksize)}, option{"windowsize", fmt.Sprint(window)})
	c.send(c.srv, req)
	var got bytes.Buffer
	var tid *net.UDPAddr
	next := uint16(1) // the next block in order
	inWin := 0
	gapAcked := false
	for end := time.Now().Add(5 * time.Minute); time.Now().Before(end); {
		p, from, err := c.recv(100 * time.Millisecond)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if tid == nil {
				c.send(c.srv, req)
			} else {
				c.send(tid, appendAck(nil, next-1))
			}
			inWin = 0
			continue
		}
		if err != nil {
			return nil, err
		}
		switch {
		case p.Op == opOACK && next == 1:
			tid = from
			c.send(tid, appendAck(nil, 0))
			inWin = 0
		case p.Op == opDATA && p.Block == next:
			got.Write(p.Data)
			next++
			inWin++
			gapAcked = false
			if len(p.Data) < blksize {
				c.send(tid, appendAck(nil, p.Block))
				return got.Bytes(), nil
			}
			if inWin == window {
				c.send(tid, appendAck(nil, p.Block))
				inWin = 0
			}
		case p.Op == opDATA && p.Block-next < 0x8000 && !gapAcked:
			// A block after a lost one: the server resends from the block after this ACK.
			c.send(tid, appendAck(nil, next-1))
			gapAcked, inWin = true, 0
		case p.Op == opERROR:
			return nil, fmt.Errorf("server error %d: %s", p.ErrCode, p.ErrMsg)
		}
	}
	return nil, errors.New("no complete download within 5 minutes")
}
