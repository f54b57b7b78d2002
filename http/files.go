package http

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	nethttp "net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/control/profile"
)

// ipxeSuffixes are the iPXE binaries served under /ipxe/.
var ipxeSuffixes = []string{".efi", ".kpxe", ".kkpxe", ".kkkpxe", ".pxe", ".lkrn"}

// asset serves a file of the assets directory and adds the download to the machine's timeline:
// its profile's kernel or initrd reaches that phase.
func (s *Server) asset(w *recorder, r *nethttp.Request) {
	name := r.PathValue("path")
	if s.cfg.Assets == "" {
		nethttp.Error(w, "no assets directory configured", nethttp.StatusNotFound)
		return
	}
	served := s.serveFile(w, r, s.cfg.Assets, name, false)
	if s.cfg.Machines == nil {
		return
	}
	mac, ok := s.attribute(r)
	if !ok {
		return
	}
	ev := machines.Event{Source: "http", Bytes: w.bytes}
	kind := s.assetKind(mac, name)
	if served && r.Method == nethttp.MethodGet {
		switch kind {
		case profile.AssetKernel:
			ev.Phase = machines.PhaseKernel
		case profile.AssetInitrd:
			ev.Phase = machines.PhaseInitrd
		}
	}
	ev.Detail = fmt.Sprintf("%s /assets/%s: %d", r.Method, name, w.Status())
	if kind != "" {
		ev.Detail += " (" + kind + ")"
	}
	ev.Detail += overTLS(r)
	s.cfg.Machines.Record(mac, ev)
}

// ipxeBinary serves an iPXE binary, for UEFI HTTP boot.
func (s *Server) ipxeBinary(w *recorder, r *nethttp.Request) {
	name := r.PathValue("file")
	ok := false
	for _, suf := range ipxeSuffixes {
		ok = ok || strings.HasSuffix(name, suf)
	}
	// One entry of the directory: {file} is one segment, but %2F decodes to a slash in it.
	if !ok || strings.Contains(name, "/") {
		nethttp.Error(w, "not an iPXE binary", nethttp.StatusNotFound)
		return
	}
	s.serveFile(w, r, s.cfg.IPXEDir, name, true)
	if s.cfg.Machines == nil {
		return
	}
	if mac, ok := s.attribute(r); ok {
		s.cfg.Machines.Record(mac, machines.Event{Source: "http", Bytes: w.bytes,
			Detail: fmt.Sprintf("%s /ipxe/%s: %d%s", r.Method, name, w.Status(), overTLS(r))})
	}
}

// overTLS marks a timeline entry for a request that came over HTTPS.
func overTLS(r *nethttp.Request) string {
	if r.TLS != nil {
		return " over TLS"
	}
	return ""
}

// serveFile serves dir/name through os.Root, so neither ".." nor a symlink leaves dir, with
// ServeContent: Range, HEAD, conditional requests, and sendfile from the *os.File. It reports
// whether the file was sent (200 or 206).
func (s *Server) serveFile(w *recorder, r *nethttp.Request, dir, name string, topLinks bool) bool {
	if name == "" || !fs.ValidPath(name) || strings.ContainsAny(name, "\\\x00") {
		nethttp.Error(w, "bad path", nethttp.StatusBadRequest)
		return false
	}
	release, ok := s.downloadSlot(w, r)
	if !ok {
		return false
	}
	defer release()
	log := s.log.With("file", name, "peer", r.RemoteAddr)
	f, err := openRegular(dir, name, topLinks)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Info("refused file", "err", err) // an escape attempt, a directory, a permission problem
		}
		nethttp.NotFound(w, r)
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		nethttp.NotFound(w, r)
		return false
	}
	s.sendContent(w, r, st, f, log)
	log.Debug("served file", "code", w.Status(), "bytes", w.bytes)
	return w.Status() == nethttp.StatusOK || w.Status() == nethttp.StatusPartialContent
}

// openRegular opens a regular file under dir through os.Root. With topLinks, a symlink that is
// itself an entry of dir is followed wherever it points: Debian's ipxe package links ipxe.efi
// and ipxe.lkrn to /boot. The link is the package's, not a path the client chose.
func openRegular(dir, name string, topLinks bool) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	if topLinks && !strings.Contains(name, "/") {
		if st, err := root.Lstat(name); err == nil && st.Mode()&fs.ModeSymlink != 0 {
			return openIfRegular(func() (fs.FileInfo, error) { return os.Stat(filepath.Join(dir, name)) },
				func() (*os.File, error) { return os.Open(filepath.Join(dir, name)) })
		}
	}
	return openIfRegular(func() (fs.FileInfo, error) { return root.Stat(name) },
		func() (*os.File, error) { return root.Open(name) })
}

// openIfRegular stats before opening: opening a FIFO would block until something writes to it.
func openIfRegular(stat func() (fs.FileInfo, error), open func() (*os.File, error)) (*os.File, error) {
	st, err := stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", st.Name())
	}
	return open()
}

// attribute finds the machine a download is for: ?mac= if the request comes from that machine,
// else the machine at its address.
func (s *Server) attribute(r *nethttp.Request) (net.HardwareAddr, bool) {
	if v := r.URL.Query().Get("mac"); v != "" {
		if mac, err := parseMAC(v); err == nil {
			_, ok := s.owner(r, mac, "")
			return mac, ok
		}
	}
	return s.byAddr(remoteIP(r))
}

// assetKind says whether name is the kernel or an initrd of the machine's profile: the one its
// script was rendered from, else the one its facts select now.
func (s *Server) assetKind(mac net.HardwareAddr, name string) string {
	res := s.resolver(netip.Addr{})
	if res == nil {
		return ""
	}
	prof := ""
	if m, ok := s.cfg.Machines.Get(mac); ok {
		prof = m.Profile
	}
	if prof == "" {
		if m, ok := res.Resolve(facts(mac, s.reported(mac), s.classes(mac), netip.Addr{})); ok {
			prof = m.Profile.Name
		}
	}
	return res.AssetKind(prof, name)
}
