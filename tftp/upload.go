package tftp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
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
func (s *Server) receive(ctx context.Context, pt *peerTransfer, req packet, peer netip.AddrPort, dst netip.Addr) {
	u := &upload{s: s, peer: peer, begin: time.Now(),
		log: s.log.With("file", req.Filename, "peer", peer.String(), "direction", "upload")}
	if r := u.create(req.Filename); r != nil {
		s.replyError(peer, dst, r.code, r.msg)
		u.fail(r)
		return
	}
	defer u.close()
	blksize, first, err := s.uploadOptions(req.Options)
	if err != nil {
		u.discard()
		s.replyError(peer, dst, errOptionRefused, err.Error())
		u.fail(&refusal{reason: "bad_option", err: err})
		return
	}
	conn, _, err := s.transferSocket(ctx, dst)
	if err != nil {
		u.discard()
		s.replyError(peer, dst, errNotDefined, "server error")
		u.fail(&refusal{reason: "io_error", err: err})
		return
	}
	defer conn.Close()
	u.conn, u.paddr = conn, net.UDPAddrFromAddrPort(peer)
	u.req = []byte(pt.rrq)
	u.acked = func() { s.confirm(pt) }
	if r := u.receiveBlocks(blksize, first); r != nil {
		// Drop the part before telling the client, so that once it has its error no
		// NAME.part is left.
		u.discard()
		if r.msg != "" {
			u.conn.WriteToUDP(appendError(nil, r.code, r.msg), u.paddr)
		}
		u.fail(r)
		return
	}
	s.m.completed.Inc()
	u.log.Info("tftp: upload complete", "bytes", u.total, "blksize", blksize, "duration", time.Since(u.begin))
}

// refusal is why an upload stopped: the ERROR for the client (none when msg is "") and the
// reason label of transfers_failed_total.
type refusal struct {
	code   uint16
	msg    string
	reason string
	err    error
}

// upload is one write request in progress: its partial file and the client it talks to.
type upload struct {
	s     *Server
	log   *slog.Logger
	begin time.Time
	peer  netip.AddrPort
	paddr *net.UDPAddr
	conn  *net.UDPConn
	acked func() // runs at the client's first DATA
	req   []byte // the write request, to recognise its copies

	root       *os.Root
	f          *os.File
	name, part string
	stored     bool // renamed to its final name
	removed    bool // the part is gone
	total      int64
}

func (u *upload) fail(r *refusal) {
	u.s.m.failed.WithLabelValues(r.reason).Inc()
	u.log.Info("tftp: upload failed", "reason", r.reason, "err", r.err, "duration", time.Since(u.begin))
}

// create checks the name and creates NAME.part, refusing names that exist.
func (u *upload) create(filename string) *refusal {
	name, err := cleanPath(filename)
	if err != nil {
		return &refusal{errAccessViolation, "access violation", "access_violation", err}
	}
	root, err := os.OpenRoot(u.s.cfg.UploadDir)
	if err != nil {
		return &refusal{errAccessViolation, "uploads unavailable", "io_error", err}
	}
	if _, err := root.Stat(name); err == nil {
		root.Close()
		return &refusal{errFileExists, "file already exists", "exists", fs.ErrExist}
	}
	if !u.s.uploadSpace(root) {
		root.Close()
		return &refusal{errDiskFull, "disk full", "disk_full", fmt.Errorf("upload quota of %d bytes reached", u.s.cfg.UploadQuota)}
	}
	part := name + ".part"
	f, err := root.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) && u.reclaim(root, part) {
		f, err = root.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	}
	if err != nil {
		root.Close()
		if errors.Is(err, fs.ErrExist) {
			return &refusal{errFileExists, "an upload of this file is in progress", "access_violation", err}
		}
		return &refusal{errAccessViolation, "access violation", "access_violation", err}
	}
	u.root, u.f, u.name, u.part = root, f, name, part
	return nil
}

// reclaim removes a NAME.part left behind by an upload that can no longer be running (netbootd
// stopped mid-transfer): one not written for longer than an upload waits for its client
// before giving up. It reports whether the name is free again.
func (u *upload) reclaim(root *os.Root, part string) bool {
	st, err := root.Lstat(part)
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	giveUp := time.Duration(u.s.cfg.Retries+2) * u.s.cfg.Timeout
	if time.Since(st.ModTime()) <= giveUp {
		return false // an upload in progress, here or in another process
	}
	if root.Remove(part) != nil {
		return false
	}
	u.s.releaseUpload(st.Size())
	u.log.Info("tftp: removed a stale partial upload", "part", part, "modified", st.ModTime())
	return true
}

// discard drops the partial file, unless it was stored under its name.
func (u *upload) discard() {
	if !u.stored && !u.removed {
		u.f.Close()
		_ = u.root.Remove(u.part)
		u.removed = true
		u.s.releaseUpload(u.total)
	}
}

func (u *upload) close() {
	u.discard()
	if u.stored {
		u.f.Close()
	}
	u.root.Close()
}

// receiveBlocks runs the lock-step exchange: send the OACK or an ACK, wait for the next DATA,
// store it; until the final (short) block is stored and acknowledged.
func (u *upload) receiveBlocks(blksize int, first []byte) *refusal {
	last := first // what to resend on a timeout: the OACK or the last ACK
	next := uint16(1)
	buf := make([]byte, 4+blksize+1)
	for tries := 0; ; {
		if _, err := u.conn.WriteToUDP(last, u.paddr); err != nil {
			return &refusal{reason: "io_error", err: err}
		}
		if u.stored { // the final ACK is out
			return nil
		}
		p, err := u.read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if tries++; tries > u.s.cfg.Retries {
					return &refusal{errNotDefined, "timeout", "timeout", err}
				}
				continue
			}
			return &refusal{reason: "canceled", err: err}
		}
		switch {
		case p == nil:
			// Garbage, another host's packet, or a copy of the request (the client's first
			// reply was lost or late): answered with our last packet, the OACK or ACK 0 at first.
			continue
		case p.Op == opERROR:
			return &refusal{reason: "client_error", err: fmt.Errorf("client error %d: %s", p.ErrCode, p.ErrMsg)}
		case p.Op != opDATA || len(p.Data) > blksize:
			return &refusal{errIllegalOp, "illegal TFTP operation", "bad_request", fmt.Errorf("unexpected packet %d", p.Op)}
		case p.Block != next:
			continue // a duplicate: the timer resends our last ACK
		}
		tries = 0
		if next == 1 {
			u.acked()
		}
		if r := u.store(p.Data, len(p.Data) < blksize); r != nil {
			return r
		}
		last = appendAck(nil, next)
		next++
	}
}

// read waits for the peer's next packet; nil (and no error) for garbage, for copies of the
// request and for other hosts' packets, which get ERROR 5 (RFC 1350: a wrong TID).
func (u *upload) read(buf []byte) (*packet, error) {
	_ = u.conn.SetReadDeadline(time.Now().Add(u.s.cfg.Timeout))
	n, from, err := u.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil, err
	}
	if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != u.peer {
		u.conn.WriteToUDP(appendError(nil, errUnknownTID, "unknown transfer ID"), net.UDPAddrFromAddrPort(from))
		return nil, nil
	}
	p, err := parsePacket(buf[:n])
	if err != nil || bytes.Equal(buf[:n], u.req) {
		return nil, nil
	}
	return &p, nil
}

// store appends one block to the part; after the final block it makes the file durable and
// gives it its name.
func (u *upload) store(data []byte, final bool) *refusal {
	n := int64(len(data))
	if u.total+n > u.s.cfg.MaxUpload {
		return &refusal{errDiskFull, "upload larger than allowed", "too_large", fmt.Errorf("over %d bytes", u.s.cfg.MaxUpload)}
	}
	if !u.s.reserveUpload(n) {
		return &refusal{errDiskFull, "disk full", "disk_full", fmt.Errorf("upload quota of %d bytes reached", u.s.cfg.UploadQuota)}
	}
	u.total += n
	if _, err := u.f.Write(data); err != nil {
		return &refusal{errDiskFull, "disk full or write error", "io_error", err}
	}
	if !final {
		return nil
	}
	if err := u.f.Sync(); err != nil {
		return &refusal{errDiskFull, "disk full or write error", "io_error", err}
	}
	if err := u.root.Rename(u.part, u.name); err != nil {
		return &refusal{errNotDefined, "cannot store the file", "io_error", err}
	}
	u.stored = true
	return nil
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

// uploadSpace recounts what the upload directory holds (files removed or added by hand count
// from here on) and reports whether the quota leaves room for more. Uploads in progress are
// counted by what they have written; each block written after is reserved by reserveUpload.
func (s *Server) uploadSpace(root *os.Root) bool {
	var used int64
	_ = fs.WalkDir(root.FS(), ".", func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				used += info.Size()
			}
		}
		return nil
	})
	s.uploadMu.Lock()
	defer s.uploadMu.Unlock()
	s.uploadUsed = used
	return used < s.cfg.UploadQuota
}

// reserveUpload counts n more bytes into the upload directory, unless that would pass the quota.
func (s *Server) reserveUpload(n int64) bool {
	s.uploadMu.Lock()
	defer s.uploadMu.Unlock()
	if s.uploadUsed+n > s.cfg.UploadQuota {
		return false
	}
	s.uploadUsed += n
	return true
}

// releaseUpload takes back n bytes of a removed partial upload.
func (s *Server) releaseUpload(n int64) {
	s.uploadMu.Lock()
	defer s.uploadMu.Unlock()
	s.uploadUsed = max(0, s.uploadUsed-n)
}
