package http

import (
	"errors"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"net/netip"
	"strings"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/control/profile"
)

// chainQuery is what iPXE reports about the machine, expanded by iPXE itself. netX is the
// device iPXE last opened (the one that got DHCP), unlike net0 on a machine with several NICs.
// hexhyp (2010), uristring (2008), buildarch and platform (2013) all predate Debian's 2019 iPXE.
const chainQuery = "mac=${netX/mac:hexhyp}&uuid=${uuid}&arch=${buildarch}&platform=${platform}" +
	"&serial=${serial:uristring}&hostname=${hostname:uristring}"

// chain is the script iPXE is sent to by DHCP: it fetches the machine's own script.
func (s *Server) chain(w *recorder, r *nethttp.Request) {
	writeScript(w, nethttp.StatusOK, "#!ipxe\nchain --replace --autofree "+s.baseURL(r)+"/ipxe/script?"+chainQuery+"\n")
}

// baseURL is how machines reach this server: the profiles' base URL (control/config's BaseURL:
// http.base_url, else the server's address), or without profiles the one the client used.
func (s *Server) baseURL(r *nethttp.Request) string {
	if b := s.resolverFor(r).BaseURL(); b != "" {
		return b
	}
	host := r.Host
	if host == "" {
		if a, ok := r.Context().Value(nethttp.LocalAddrContextKey).(net.Addr); ok {
			host = a.String()
		}
	}
	return "http://" + host
}

// script answers the machine's iPXE script. Whatever happens the body is an iPXE script: iPXE
// would show an HTML error page as a cryptic "exec format" failure.
func (s *Server) script(w *recorder, r *nethttp.Request) {
	mac, err := parseMAC(r.URL.Query().Get("mac"))
	if err != nil {
		writeScript(w, nethttp.StatusBadRequest, errorScript(err.Error()))
		return
	}
	s.machineScript(w, r, mac, "GET /ipxe/script")
}

// auto answers GET /auto.ipxe, the URL an external DHCP server hands iPXE (Tinkerbell's): the
// script of the machine at the request's address, or of ?mac= (iPXE's ${net0/mac}) when the
// request proves it comes from that machine. A machine netbootd cannot find gets a script that
// says why and exits, so the firmware goes on to its next boot device (and a machine reserved
// meanwhile is found when it netboots again).
func (s *Server) auto(w *recorder, r *nethttp.Request) {
	q := r.URL.Query()
	if q.Has("mac") {
		mac, err := parseMAC(q.Get("mac"))
		if err != nil {
			writeScript(w, nethttp.StatusBadRequest, errorScript(err.Error()))
			return
		}
		s.machineScript(w, r, mac, "GET /auto.ipxe")
		return
	}
	ip := remoteIP(r)
	mac, ok := s.byAddr(ip)
	if !ok {
		s.log.Info("auto.ipxe: no machine known at this address", "peer", r.RemoteAddr)
		writeScript(w, nethttp.StatusOK, "#!ipxe\necho "+ipxeText("netbootd: no machine known at "+ip.String()+
			": reserve its MAC (with the ip its DHCP server gives it)")+"\nsleep 10\nexit 1\n")
		return
	}
	s.machineScript(w, r, mac, "GET /auto.ipxe")
}

// machineScript renders mac's script for r, which must come from that machine (allow): the
// script carries its kernel arguments and tokens, and the facts r reports select its profile.
func (s *Server) machineScript(w *recorder, r *nethttp.Request, mac net.HardwareAddr, what string) {
	q := r.URL.Query()
	if !s.allow(w, r, mac, "", "ipxe script") {
		return
	}
	rep := machines.Reported{UUID: fact(q.Get("uuid")), Arch: fact(q.Get("arch")), Platform: fact(q.Get("platform")),
		Serial: fact(q.Get("serial")), Hostname: fact(q.Get("hostname"))}
	if s.cfg.Machines != nil {
		s.cfg.Machines.Report(mac, rep)
	}
	f := facts(mac, rep, s.classes(mac), remoteIP(r))
	log := s.log.With("mac", mac.String(), "peer", r.RemoteAddr)

	m, ok := s.resolverFor(r).Resolve(f)
	if !ok {
		log.Info("ipxe script: no profile", "reason", m.Reason)
		s.explain(mac, machines.Told{Hostname: f.Hostname, ProfileReason: m.Reason}, machines.PhaseScript, what+": no profile")
		writeScript(w, nethttp.StatusOK, "#!ipxe\necho "+ipxeText("netbootd: "+mac.String()+": "+m.Reason)+"\nexit\n")
		return
	}
	s.sign(&m, mac)
	told := machines.Told{Hostname: m.Data.Hostname, Profile: m.Profile.Name, ProfileReason: m.Reason}
	body, err := m.Script()
	if err != nil {
		log.Error("ipxe script: render", "profile", m.Profile.Name, "err", err)
		s.explain(mac, told, "", what+": profile "+m.Profile.Name+": "+err.Error())
		writeScript(w, nethttp.StatusInternalServerError, errorScript("profile "+m.Profile.Name+": "+err.Error()))
		return
	}
	log.Info("ipxe script", "profile", m.Profile.Name, "reason", m.Reason)
	s.explain(mac, told, machines.PhaseScript, what+": profile "+m.Profile.Name)
	writeScript(w, nethttp.StatusOK, body)
}

// explain records on mac's timeline what it was told, and an event of the phase it reached.
func (s *Server) explain(mac net.HardwareAddr, told machines.Told, phase, detail string) {
	if s.cfg.Machines == nil {
		return
	}
	s.cfg.Machines.Explain(mac, told)
	s.cfg.Machines.Record(mac, machines.Event{Phase: phase, Source: "http", Detail: detail})
}

// config answers a booted system's user-data, meta-data or Ignition config.
func (s *Server) config(w *recorder, r *nethttp.Request) {
	kind := r.PathValue("kind")
	switch kind {
	case profile.UserData, profile.MetaData, profile.Ignition:
	default:
		nethttp.NotFound(w, r)
		return
	}
	var mac net.HardwareAddr
	var err error
	switch raw := r.PathValue("mac"); {
	case raw != "":
		mac, err = parseMAC(raw)
	case r.URL.Query().Has("mac"):
		mac, err = parseMAC(r.URL.Query().Get("mac"))
	default:
		var ok bool
		if mac, ok = s.byAddr(remoteIP(r)); !ok {
			err = errors.New("no mac, and no machine known at this address")
		}
	}
	if err != nil {
		nethttp.Error(w, err.Error(), nethttp.StatusBadRequest)
		return
	}
	if !s.allow(w, r, mac, r.PathValue("token"), "config "+kind) {
		return
	}
	// The facts iPXE reported with the script select the same group now.
	m, ok := s.resolverFor(r).Resolve(facts(mac, s.reported(mac), s.classes(mac), remoteIP(r)))
	if !ok {
		nethttp.Error(w, "no profile: "+m.Reason, nethttp.StatusNotFound)
		return
	}
	s.sign(&m, mac)
	body, ok, err := m.Config(kind)
	switch {
	case err != nil:
		s.log.Error("config: render", "mac", mac.String(), "profile", m.Profile.Name, "kind", kind, "err", err)
		nethttp.Error(w, err.Error(), nethttp.StatusInternalServerError)
	case !ok:
		nethttp.Error(w, fmt.Sprintf("profile %q has no %s", m.Profile.Name, kind), nethttp.StatusNotFound)
	default:
		ct := "text/plain; charset=utf-8"
		if kind == profile.Ignition {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		io.WriteString(w, body)
	}
	if s.cfg.Machines != nil {
		s.cfg.Machines.Record(mac, machines.Event{Source: "http",
			Detail: fmt.Sprintf("GET /configs/%s: %d (profile %s)", kind, w.Status(), m.Profile.Name)})
	}
}

// booted is the booted system's callback: it closes the machine's boot timeline.
func (s *Server) booted(w *recorder, r *nethttp.Request) {
	mac, err := parseMAC(r.PathValue("mac"))
	if err != nil {
		nethttp.Error(w, err.Error(), nethttp.StatusBadRequest)
		return
	}
	if !s.allow(w, r, mac, r.PathValue("token"), "booted callback") {
		return
	}
	detail := r.Method + " /booted from " + remoteIP(r).String()
	if r.Method == nethttp.MethodPost {
		// A short note from the system (its kernel, an error): bounded, one line.
		b, _ := io.ReadAll(io.LimitReader(r.Body, 256))
		if note := strings.TrimSpace(printable(string(b))); note != "" {
			detail += ": " + note
		}
	}
	if s.cfg.Machines != nil {
		s.cfg.Machines.Record(mac, machines.Event{Phase: machines.PhaseBooted, Source: "callback", Detail: detail})
	}
	s.log.Info("booted", "mac", mac.String(), "peer", r.RemoteAddr)
	io.WriteString(w, "ok\n")
}

// byAddr finds the machine at ip (locate).
func (s *Server) byAddr(ip netip.Addr) (net.HardwareAddr, bool) {
	mac, _, ok := s.locate(ip)
	return mac, ok
}

// reported is what the machine's iPXE reported with its script, if anything.
func (s *Server) reported(mac net.HardwareAddr) machines.Reported {
	if s.cfg.Machines == nil {
		return machines.Reported{}
	}
	m, _ := s.cfg.Machines.Get(mac)
	return m.Reported
}

// classes are the client classes DHCP put the machine in with its latest answer.
func (s *Server) classes(mac net.HardwareAddr) []string {
	if s.cfg.Machines == nil {
		return nil
	}
	m, _ := s.cfg.Machines.Get(mac)
	return m.Classes
}

func facts(mac net.HardwareAddr, r machines.Reported, classes []string, ip netip.Addr) profile.Facts {
	return profile.Facts{MAC: mac, UUID: r.UUID, Arch: r.Arch, Platform: r.Platform, Serial: r.Serial, Hostname: r.Hostname, IP: ip, Classes: classes}
}

func parseMAC(s string) (net.HardwareAddr, error) {
	if s == "" {
		return nil, errors.New("no mac")
	}
	mac, err := net.ParseMAC(s) // colon, hyphen (iPXE's hexhyp) or dot form
	if err != nil {
		return nil, fmt.Errorf("bad mac %q", printable(s))
	}
	return mac, nil
}

func remoteIP(r *nethttp.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// fact bounds a reported fact and strips what could break a script or a log line.
func fact(s string) string {
	if len(s) > 255 {
		s = s[:255]
	}
	return strings.TrimSpace(printable(s))
}

func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// ipxeText makes s safe as the arguments of an iPXE echo. iPXE splits a line at whitespace (no
// quoting), expands ${...} in every token, and ends the command at a token that is ||, && or ;
// or starts with #.
func ipxeText(s string) string {
	toks := strings.Fields(strings.ReplaceAll(printable(s), "${", "$ {"))
	for i, t := range toks {
		if t == "||" || t == "&&" || t == ";" || strings.HasPrefix(t, "#") {
			toks[i] = "'" + t + "'"
		}
	}
	return strings.Join(toks, " ")
}

func errorScript(msg string) string {
	return "#!ipxe\necho " + ipxeText("netbootd: "+msg) + "\nexit 1\n"
}

func writeScript(w nethttp.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	io.WriteString(w, body)
}
