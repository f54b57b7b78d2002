package tftp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// receive runs one write request (WRQ) into the upload directory, lock-step (RFC 1350) with
// blksize negotiated. Uploads never overwrite: the file is written as NAME.part and renamed
// when complete, and a name that exists is refused. Anything that fails removes the part.
func (s *Server) receive(ctx context.Context, req packet, peer netip.AddrPort, dst netip.Addr) {
	begin := time.Now()
	log := s.log.With("file", req.Filename, "peer", peer.String(), "direction", "upload")
	fail := func(reason string, err error) {
		s.m.failed.WithLabelValues(reason).Inc()
		log.Info("tftp: upload failed", "reason", reason, "err", err, "duration", time.Since(begin))
	}
	name, err := cleanPath(req.Filename)
	if err != nil {
		s.replyError(peer, dst, errAccessViolation, "access violation")
		fail("access_violation", err)
		return
	}
	root, err := os.OpenRoot(s.cfg.UploadDir)
	if err != nil {
		s.replyError(peer, dst, errAccessViolation, "uploads unavailable")
		fail("io_error", err)
		return
	}
	defer root.Close()
	if _, err := root.Stat(name); err == nil {
		s.replyError(peer, dst, errFileExists, "file already exists")
		fail("exists", fs.ErrExist)
		return
	}
	part := name + ".part"
	f, err := root.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		code, msg := errAccessViolation, "access violation"
		if errors.Is(err, fs.ErrExist) {
			code, msg = errFileExists, "an upload of this file is in progress"
		}
		s.replyError(peer, dst, code, msg)
		fail("access_violation", err)
		return
	}
	done, removed := false, false
	// discard drops the partial file; failures call it before telling the client, so that once
	// the client has its error no NAME.part is left.
	discard := func() {
		if !removed {
			f.Close()
			_ = root.Remove(part)
			removed = true
		}
	}
	defer func() {
		if done {
			f.Close()
		} else {
			discard()
		}
	}()

	blksize, first, err := s.uploadOptions(req.Options)
	if err != nil {
		s.replyError(peer, dst, errOptionRefused, err.Error())
		fail("bad_option", err)
		return
	}
	conn, _, err := s.transferSocket(ctx, dst)
	if err != nil {
		s.replyError(peer, dst, errNotDefined, "server error")
		fail("io_error", err)
		return
	}
	defer conn.Close()
	paddr := net.UDPAddrFromAddrPort(peer)

	var total int64
	last := first // what to resend on a timeout: the OACK or the last ACK
	next := uint16(1)
	buf := make([]byte, 4+blksize+1)
	for tries := 0; ; {
		if _, err := conn.WriteToUDP(last, paddr); err != nil {
			fail("io_error", err)
			return
		}
		if done { // the final ACK is out
			break
		}
		_ = conn.SetReadDeadline(time.Now().Add(s.cfg.Timeout))
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if tries++; tries > s.cfg.Retries {
					discard()
					conn.WriteToUDP(appendError(nil, errNotDefined, "timeout"), paddr)
					fail("timeout", err)
					return
				}
				continue
			}
			fail("canceled", err)
			return
		}
		if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != peer {
			conn.WriteToUDP(appendError(nil, errUnknownTID, "unknown transfer ID"), net.UDPAddrFromAddrPort(from))
			continue
		}
		p, err := parsePacket(buf[:n])
		switch {
		case err != nil:
			continue
		case p.Op == opERROR:
			fail("client_error", fmt.Errorf("client error %d: %s", p.ErrCode, p.ErrMsg))
			return
		case p.Op != opDATA || len(p.Data) > blksize:
			discard()
			conn.WriteToUDP(appendError(nil, errIllegalOp, "illegal TFTP operation"), paddr)
			fail("bad_request", fmt.Errorf("unexpected packet %d", p.Op))
			return
		case p.Block != next:
			continue // a duplicate: the timer resends our last ACK
		}
		tries = 0
		if total += int64(len(p.Data)); total > s.cfg.MaxUpload {
			discard()
			conn.WriteToUDP(appendError(nil, errDiskFull, "upload larger than allowed"), paddr)
			fail("too_large", fmt.Errorf("over %d bytes", s.cfg.MaxUpload))
			return
		}
		if _, err := f.Write(p.Data); err != nil {
			discard()
			conn.WriteToUDP(appendError(nil, errDiskFull, "disk full or write error"), paddr)
			fail("io_error", err)
			return
		}
		last = appendAck(nil, next)
		next++
		if len(p.Data) < blksize { // the final block: make it durable, then give it its name
			if err := f.Sync(); err != nil {
				discard()
				conn.WriteToUDP(appendError(nil, errDiskFull, "disk full or write error"), paddr)
				fail("io_error", err)
				return
			}
			if err := root.Rename(part, name); err != nil {
				conn.WriteToUDP(appendError(nil, errNotDefined, "cannot store the file"), paddr)
				fail("io_error", err)
				return
			}
			done = true
		}
	}
	s.m.completed.Inc()
	log.Info("tftp: upload complete", "bytes", total, "blksize", blksize, "duration", time.Since(begin))
}

// uploadOptions accepts blksize (capped like downloads) and tsize (the client's size, checked
// against the limit); it returns the block size and the first packet to send: OACK or ACK 0.
func (s *Server) uploadOptions(opts []option) (int, []byte, error) {
	blksize := defaultBlock
	var acked []option
	for _, o := range opts {
		switch strings.ToLower(o.Name) {
		case "blksize":
			v, err := parseOptInt(o, MinBlksize, MaxBlksize)
			if err != nil {
				return 0, nil, err
			}
			blksize = min(v, s.cfg.MaxBlockSize)
			acked = append(acked, option{"blksize", strconv.Itoa(blksize)})
		case "tsize":
			v, err := strconv.ParseInt(o.Value, 10, 64)
			if err != nil || v < 0 {
				return 0, nil, fmt.Errorf("bad tsize %q", o.Value)
			}
			if v > s.cfg.MaxUpload {
				return 0, nil, fmt.Errorf("tsize %d over the upload limit %d", v, s.cfg.MaxUpload)
			}
			acked = append(acked, option{"tsize", o.Value})
		}
	}
	if len(acked) == 0 {
		return blksize, appendAck(nil, 0), nil
	}
	return blksize, appendOACK(nil, acked), nil
}
