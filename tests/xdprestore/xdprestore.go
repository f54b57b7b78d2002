package xdprestore

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// Peer is the restoring program attached to one interface.
type Peer struct{ objs restoreObjects }

// Attach loads the program with request as the frame to restore and attaches it natively to
// ifname, in the caller's network namespace. Close detaches nothing: the interface's deletion does.
func Attach(ifname string, request []byte) (*Peer, error) {
	var p Peer
	if err := loadRestoreObjects(&p.objs, nil); err != nil {
		return nil, fmt.Errorf("xdprestore: load: %w", err)
	}
	var f restoreFrame
	if len(request) > len(f.Data) {
		p.objs.Close()
		return nil, errors.New("xdprestore: request frame too large")
	}
	f.Len = uint32(len(request))
	copy(f.Data[:], request)
	if err := p.objs.Request.Put(uint32(0), &f); err != nil {
		p.objs.Close()
		return nil, fmt.Errorf("xdprestore: %w", err)
	}
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		p.objs.Close()
		return nil, fmt.Errorf("xdprestore: %w", err)
	}
	if err := netlink.LinkSetXdpFdWithFlags(l, p.objs.XdpRestore.FD(), nl.XDP_FLAGS_DRV_MODE); err != nil {
		p.objs.Close()
		return nil, fmt.Errorf("xdprestore: attach to %s: %w", ifname, err)
	}
	return &p, nil
}

// Restored is how many replies arrived and were restored.
func (p *Peer) Restored() (uint64, error) {
	var perCPU []uint64
	if err := p.objs.Restored.Lookup(uint32(0), &perCPU); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

// Close releases the program and maps (the attachment keeps its own reference).
func (p *Peer) Close() error { return p.objs.Close() }
