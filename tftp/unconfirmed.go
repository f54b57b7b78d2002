package tftp

import (
	"container/heap"
	"container/list"
	"net/netip"
)

// unconfirmedSet holds the transfers whose client has not acknowledged anything yet (their
// source may be spoofed), grouped by client address, and names the one that gives way when
// they are all taken (victim) in O(log n): addresses sit in a heap ordered by how many
// transfers they hold, each address's transfers in a list, oldest first. Not safe for
// concurrent use: the Server's mutex guards it.
type unconfirmedSet struct {
	byAddr map[netip.Addr]*unconfirmedAddr
	order  addrHeap
	n      int
}

// unconfirmedAddr is one client address's unconfirmed transfers.
type unconfirmedAddr struct {
	transfers *list.List // of *peerTransfer, by admitted, oldest first
	index     int        // in the heap
}

func newUnconfirmedSet() *unconfirmedSet {
	return &unconfirmedSet{byAddr: map[netip.Addr]*unconfirmedAddr{}}
}

// len is how many transfers the set holds.
func (u *unconfirmedSet) len() int { return u.n }

// count is how many transfers of the set come from a.
func (u *unconfirmedSet) count(a netip.Addr) int {
	if ua := u.byAddr[a]; ua != nil {
		return ua.transfers.Len()
	}
	return 0
}

// add puts pt (its src and admitted set) into the set.
func (u *unconfirmedSet) add(pt *peerTransfer) {
	ua := u.byAddr[pt.src.Addr()]
	if ua == nil {
		ua = &unconfirmedAddr{transfers: list.New()}
		u.byAddr[pt.src.Addr()] = ua
		heap.Push(&u.order, ua)
	}
	// Transfers are admitted in time order, so this walks no further than the back.
	e := ua.transfers.Back()
	for e != nil && pt.admitted.Before(e.Value.(*peerTransfer).admitted) {
		e = e.Prev()
	}
	if e == nil {
		pt.pending = ua.transfers.PushFront(pt)
	} else {
		pt.pending = ua.transfers.InsertAfter(pt, e)
	}
	u.n++
	heap.Fix(&u.order, ua.index)
}

// remove takes pt out of the set; it reports whether pt was in it.
func (u *unconfirmedSet) remove(pt *peerTransfer) bool {
	if pt.pending == nil {
		return false
	}
	ua := u.byAddr[pt.src.Addr()]
	ua.transfers.Remove(pt.pending)
	pt.pending = nil
	u.n--
	if ua.transfers.Len() == 0 {
		heap.Remove(&u.order, ua.index)
		delete(u.byAddr, pt.src.Addr())
	} else {
		heap.Fix(&u.order, ua.index)
	}
	return true
}

// victim is the transfer that gives way when the set is full: the oldest of the address
// holding the most, so that a flood's addresses lose theirs before a client with a single
// request does; nil when the set is empty.
func (u *unconfirmedSet) victim() *peerTransfer {
	if len(u.order) == 0 {
		return nil
	}
	return u.order[0].transfers.Front().Value.(*peerTransfer)
}

// addrHeap orders addresses by the number of transfers they hold (most first), then by their
// oldest transfer (oldest first).
type addrHeap []*unconfirmedAddr

func (h addrHeap) Len() int { return len(h) }
func (h addrHeap) Less(i, j int) bool {
	a, b := h[i].transfers, h[j].transfers
	if a.Len() != b.Len() {
		return a.Len() > b.Len()
	}
	return a.Front().Value.(*peerTransfer).admitted.Before(b.Front().Value.(*peerTransfer).admitted)
}
func (h addrHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *addrHeap) Push(x any) {
	ua := x.(*unconfirmedAddr)
	ua.index = len(*h)
	*h = append(*h, ua)
}
func (h *addrHeap) Pop() any {
	old := *h
	ua := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return ua
}
