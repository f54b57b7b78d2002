package http

import (
	nethttp "net/http"

	"github.com/netbootd/netbootd/control/profile"
)

// grubConfig answers GET /grub/{file...}: the grub.cfg names a GRUB network image asks for when
// its prefix is (http,SERVER)/grub (loaded by UEFI HTTP boot, or told so), rendered from the
// profile of the machine at the request's address, and only for that machine. A name GRUB
// would not ask for on that machine, or no machine there, is 404 with no content, so GRUB's
// search goes on to its next name.
func (s *Server) grubConfig(w *recorder, r *nethttp.Request) {
	name := "grub/" + r.PathValue("file")
	ip := remoteIP(r)
	leaf, isConfig := profile.GRUBConfigName(name)
	mac, found := s.byAddr(ip)
	if !isConfig || !found || !profile.GRUBAsks(leaf, mac, ip) {
		notFound(w)
		return
	}
	if !s.allow(w, r, mac, "", "grub config") {
		return
	}
	body, ok := s.renderConfig(s.resolverFor(r), mac, ip, "http", name, grubKind)
	if !ok {
		notFound(w)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(body)
}

// notFound is 404 with no content: whose config a name would be is nobody else's business.
func notFound(w nethttp.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(nethttp.StatusNotFound)
}
