package main

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
)

// close releases every part, the last built first, and a failing close does not stop the
// others; the daemon is ready only while every part is.
func TestParts(t *testing.T) {
	d := &daemon{log: slog.New(slog.DiscardHandler)}
	var closed []string
	synced := false
	for _, name := range []string{"lease store", "eth0 dhcp", "eth0 xdp fast path", "http", "inventory"} {
		p := part{name: name, close: func() error {
			closed = append(closed, name)
			if name == "eth0 xdp fast path" {
				return errors.New("already closed")
			}
			return nil
		}}
		if name == "inventory" {
			p.ready = func() bool { return synced }
		}
		d.add(p)
	}
	d.add(part{name: "metrics"}) // nothing to close
	if d.ready() {
		t.Error("ready before the inventory is synced")
	}
	synced = true
	if !d.ready() {
		t.Error("not ready once every part is")
	}
	d.close()
	if want := []string{"inventory", "http", "eth0 xdp fast path", "eth0 dhcp", "lease store"}; !slices.Equal(closed, want) {
		t.Errorf("closed %v, want %v", closed, want)
	}
}
