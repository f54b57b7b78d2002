//go:build integration

package tests

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/netbootd/netbootd/tests/netns"
)

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// capture is tcpdump writing the UDP datagrams of one port on one interface to a pcap file.
type capture struct {
	cmd  *exec.Cmd
	path string
	out  *syncBuffer // tcpdump's stderr: "listening on", the packet counts
}

// startCapture runs tcpdump in ns on iface for UDP port and returns once it listens.
func startCapture(t *testing.T, ns *netns.NS, iface string, port int) *capture {
	t.Helper()
	c := &capture{path: filepath.Join(t.TempDir(), "capture.pcap"), out: &syncBuffer{}}
	c.cmd = ns.Cmd(t, "tcpdump", "-i", iface, "--immediate-mode", "-U", "-w", c.path, "udp", "port", fmt.Sprint(port))
	c.cmd.Stderr = c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "tcpdump listening", func() bool { return strings.Contains(c.out.String(), "listening on") })
	return c
}

// payloads are the UDP payloads captured so far.
func (c *capture) payloads(t *testing.T) [][]byte {
	t.Helper()
	return readPcapUDP(t, c.path)
}

// stop ends tcpdump (SIGINT flushes its file) and returns every UDP payload it captured.
func (c *capture) stop(t *testing.T) [][]byte {
	t.Helper()
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	_ = c.cmd.Wait()
	return c.payloads(t)
}

// readPcapUDP returns the UDP payloads of the IPv4 frames in a tcpdump capture (Ethernet link type).
func readPcapUDP(t *testing.T, path string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 24 {
		t.Fatalf("%s: not a pcap file (%d bytes)", path, len(data))
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(data) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		t.Fatalf("%s: bad pcap magic", path)
	}
	if lt := bo.Uint32(data[20:]); lt != 1 {
		t.Fatalf("%s: link type %d, want Ethernet", path, lt)
	}
	var out [][]byte
	for p := data[24:]; len(p) >= 16; {
		n := int(bo.Uint32(p[8:]))
		if 16+n > len(p) {
			break
		}
		frame := p[16 : 16+n]
		p = p[16+n:]
		if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		if len(ip) < 20 || ip[9] != 17 {
			continue
		}
		ihl := int(ip[0]&0x0f) * 4
		if len(ip) < ihl+8 {
			continue
		}
		out = append(out, ip[ihl+8:])
	}
	return out
}

// bootpOp is the BOOTP op field (1 request, 2 reply), 0 when too short.
func bootpOp(p []byte) byte {
	if len(p) < 240 {
		return 0
	}
	return p[0]
}

// dhcpOption returns the value of option code in a BOOTP payload, or nil.
func dhcpOption(p []byte, code byte) []byte {
	if len(p) < 240 {
		return nil
	}
	for o := p[240:]; len(o) > 0; {
		switch o[0] {
		case 0:
			o = o[1:]
			continue
		case 255:
			return nil
		}
		if len(o) < 2 || len(o) < 2+int(o[1]) {
			return nil
		}
		if o[0] == code {
			return o[2 : 2+int(o[1])]
		}
		o = o[2+int(o[1]):]
	}
	return nil
}
