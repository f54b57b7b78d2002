package tftp

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// serve runs one read transfer from its own socket (a new TID, RFC 1350 section 4).
func (s *Server) serve(ctx context.Context, pt *peerTransfer, req packet, peer netip.AddrPort, dst netip.Addr) {
	begin := time.Now()
	log := s.log.With("file", req.Filename, "peer", peer.String())
	report := func(tr Transfer) {
		if s.onTransfer != nil {
			tr.Peer, tr.File, tr.Duration = peer, req.Filename, time.Since(begin)
			s.onTransfer(tr)
		}
	}
	fail := func(reason string, err error) {
		s.m.failed.WithLabelValues(reason).Inc()
		log.Info("tftp: transfer failed", "reason", reason, "err", err, "duration", time.Since(begin))
		report(Transfer{Failure: reason})
	}
	c, err := s.open(req.Filename, req.Mode == "netascii", peer.Addr())
	if err != nil {
		switch {
		case errors.Is(err, errNotFound):
			s.replyError(peer, dst, errFileNotFound, "file not found")
			fail("not_found", err)
		case errors.Is(err, errAccess):
			s.replyError(peer, dst, errAccessViolation, "access violation")
			fail("access_violation", err)
		default:
			s.replyError(peer, dst, errNotDefined, "read error")
			fail("io_error", err)
		}
		return
	}
	defer c.Close()
	prm, err := negotiate(req.Options, c.Size(), s.cfg.MaxBlockSize, s.cfg.MaxWindow)
	if err != nil {
		s.replyError(peer, dst, errOptionRefused, err.Error())
		fail("bad_option", err)
		return
	}
	var t *connTransfer
	if pt.inbox != nil { // single-port mode: send from the listener, read what it routes here
		if t, err = newConnTransfer(s.conn, peer, s.local, c, prm); err != nil {
			s.replyError(peer, dst, errNotDefined, "server error")
			fail("io_error", err)
			return
		}
		t.inbox = pt.inbox
	} else {
		var done func()
		if t, done, err = s.ownTransfer(ctx, peer, dst, c, prm); err != nil {
			s.replyError(peer, dst, errNotDefined, "server error")
			fail("io_error", err)
			return
		}
		defer done()
	}
	timeout := prm.timeout
	if timeout == 0 {
		timeout = s.cfg.Timeout
	}
	t.req = []byte(pt.rrq)
	t.acked = func() { s.confirm(pt) }
	snd := newSender(c.Size(), prm.blksize, prm.window, len(prm.oack) > 0, timeout, s.cfg.Retries)
	snd.leash(s.cfg.Timeout)
	s.m.blksize.Observe(float64(prm.blksize))
	s.m.window.Observe(float64(prm.window))

	reason, err := t.run(ctx, snd, s.m)
	retx := snd.retransmits
	s.m.spurious.Add(float64(snd.spurious))
	if reason != "" && ctx.Err() != nil {
		// Shutdown or a superseding request closed the socket under whatever was running.
		reason, err = "canceled", context.Cause(ctx)
	}
	if reason == reasonSizeProbe {
		s.m.sizeProbes.Inc()
		log.Debug("tftp: size probe", "bytes", c.Size(), "why", err, "duration", time.Since(begin))
		report(Transfer{SizeProbe: true, Bytes: c.Size()})
		return
	}
	if reason != "" {
		fail(reason, err)
		return
	}
	s.m.completed.Inc()
	if _, perClient := c.(clientContent); !perClient {
		if name, err := cleanPath(req.Filename); err == nil {
			s.m.perFile.WithLabelValues(name).Inc()
		}
	}
	log.Info("tftp: transfer complete",
		"bytes", c.Size(), "blksize", prm.blksize, "windowsize", prm.window,
		"duration", time.Since(begin), "retransmits", retx, "spurious", snd.spurious)
	report(Transfer{Bytes: c.Size(), BlockSize: prm.blksize, Window: prm.window, Retransmits: int(retx)})
}
