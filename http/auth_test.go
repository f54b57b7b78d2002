package http

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/netbootd/netbootd/control/bootauth"
	"github.com/netbootd/netbootd/control/machines"
)

const (
	victimMAC = "52:54:00:00:00:01" // reserved, profile worker by its labels
	victimIP  = "127.0.0.2"         // DHCP leased it this address
	strangeIP = "127.0.0.9"         // another host on the boot network
)

// withTokens is startServer with a token secret, as netbootd runs.
func withTokens(t *testing.T) *testEnv {
	t.Helper()
	e := startServer(t, Config{})
	k, err := bootauth.Open(bootauth.Config{Path: filepath.Join(t.TempDir(), bootauth.FileName)})
	if err != nil {
		t.Fatal(err)
	}
	e.s.cfg.Tokens = k
	return e
}

// Another host gets 403 and nothing else for the victim's script, configs and callback, and
// changes nothing in the victim's timeline: not its facts, its profile or its phase.
func TestStrangerGetsNothing(t *testing.T) {
	e := withTokens(t)
	victim := e.leased(victimMAC, victimIP)
	if r := victim.get(t, "/ipxe/script?mac="+victimMAC+"&arch=x86_64&platform=pcbios&hostname=node01"); r.code != 200 {
		t.Fatalf("the victim's own script: %d", r.code)
	}
	before, _ := e.store.Get(mustMAC(victimMAC))
	stranger := e.from(strangeIP)
	for _, p := range []string{
		"/ipxe/script?mac=52-54-00-00-00-01&hostname=decommission&platform=efi&arch=x86_64",
		"/configs/52-54-00-00-00-01/user-data",
		"/configs/user-data?mac=52:54:00:00:00:01",
		"/configs/52-54-00-00-00-01/meta-data",
		"/configs/52-54-00-00-00-01/" + strings.Repeat("A", bootauth.TokenLen) + "/user-data",
		"/booted/52-54-00-00-00-01",
		"/booted/52-54-00-00-00-01/" + strings.Repeat("A", bootauth.TokenLen),
	} {
		r := stranger.get(t, p)
		if r.code != 403 || r.body != "" {
			t.Errorf("stranger GET %s = %d %q, want 403 and no content", p, r.code, r.body)
		}
	}
	if r := stranger.do(t, "POST", "/booted/52:54:00:00:00:01", nil); r.code != 403 {
		t.Errorf("stranger POST /booted = %d", r.code)
	}
	stranger.get(t, "/assets/debian/vmlinuz?mac="+victimMAC) // a download it claims is the victim's
	after, _ := e.store.Get(mustMAC(victimMAC))
	if d := cmp.Diff(before, after, cmpopts.IgnoreUnexported(machines.Machine{})); d != "" {
		t.Errorf("the stranger changed the victim's timeline (-before +after):\n%s", d)
	}
	if after.Reported.Hostname != "node01" || after.Phase != machines.PhaseScript {
		t.Errorf("victim: %+v", after)
	}
}

// A flood of made-up MACs opens no timeline: only DHCP and the inventory make machines known.
func TestMadeUpMACsOpenNoTimeline(t *testing.T) {
	e := withTokens(t)
	stranger := e.from(strangeIP)
	for i := 0; i < 50; i++ {
		mac := fmt.Sprintf("02:66:00:00:%02x:%02x", i>>8, i&0xff)
		for _, p := range []string{"/ipxe/script?mac=" + mac + "&hostname=x", "/booted/" + mac, "/configs/" + mac + "/user-data"} {
			if r := stranger.get(t, p); r.code != 403 {
				t.Fatalf("GET %s = %d, want 403", p, r.code)
			}
		}
		stranger.get(t, "/assets/debian/vmlinuz?mac="+mac)
	}
	if all := e.store.All(); len(all) != 0 {
		t.Errorf("%d timelines after the flood, want none: %+v", len(all), all[0])
	}
}

// A reserved machine that DHCP has not answered (its address is static, or came from another
// server) gets its script from its reserved address, and gets a timeline.
func TestReservedAddress(t *testing.T) {
	e := startServer(t, Config{})
	conf := strings.Replace(bootConfig, "ip: 10.10.0.11", "ip: 127.0.0.5", 1)
	conf = strings.Replace(conf, "subnets: [", "subnets: [{cidr: 127.0.0.0/24}, ", 1)
	e.s.SetProfiles(resolver(t, conf, e.base))
	if r := e.from("127.0.0.6").get(t, "/ipxe/script?mac="+victimMAC); r.code != 403 {
		t.Fatalf("from another address: %d", r.code)
	}
	if r := e.from("127.0.0.5").get(t, "/ipxe/script?mac="+victimMAC); r.code != 200 {
		t.Fatalf("from the reserved address: %d %q", r.code, r.body)
	}
	if m, ok := e.store.Get(mustMAC(victimMAC)); !ok || m.Phase != machines.PhaseScript {
		t.Errorf("timeline: %v %+v", ok, m)
	}
}

var tokenURL = regexp.MustCompile(`/configs/52-54-00-00-00-01/([A-Za-z0-9_-]+)/ netbootd.booted=\S+/booted/52-54-00-00-00-01/([A-Za-z0-9_-]+)\n`)

// The script netbootd renders puts a token into the config and callback URLs; with it the
// booted system fetches its config and calls back from any address (its installer may have
// got one elsewhere), and only for its own MAC.
func TestTokenInRenderedURLs(t *testing.T) {
	e := withTokens(t)
	r := e.leased(victimMAC, victimIP).get(t, "/ipxe/script?mac="+victimMAC)
	m := tokenURL.FindStringSubmatch(r.body)
	if r.code != 200 || m == nil {
		t.Fatalf("script = %d, no token in its URLs:\n%s", r.code, r.body)
	}
	tok := m[1]
	if m[2] != tok {
		t.Errorf("config and booted URLs carry different tokens: %s %s", m[1], m[2])
	}
	elsewhere := e.from("127.0.0.7")
	if r := elsewhere.get(t, "/configs/52-54-00-00-00-01/"+tok+"/user-data"); r.code != 200 || r.body != "#cloud-config\nhostname: node01\n" {
		t.Errorf("user-data with the token = %d %q", r.code, r.body)
	}
	// The other machine (leased, so known) cannot use the victim's token for itself.
	e.store.DHCP(mustMAC("52:54:00:00:00:0b"), netip.MustParseAddr("127.0.0.8"), true, machines.Event{})
	if r := elsewhere.get(t, "/configs/52-54-00-00-00-0b/"+tok+"/user-data"); r.code != 403 {
		t.Errorf("the token for another MAC = %d", r.code)
	}
	bad := []byte(tok)
	bad[len(bad)-1] ^= 1
	if r := elsewhere.get(t, "/configs/52-54-00-00-00-01/"+string(bad)+"/user-data"); r.code != 403 || r.body != "" {
		t.Errorf("a tampered token = %d %q", r.code, r.body)
	}
	if r := elsewhere.do(t, "POST", "/booted/52-54-00-00-00-01/"+tok, nil); r.code != 200 {
		t.Errorf("booted with the token = %d", r.code)
	}
	if v, _ := e.store.Get(mustMAC(victimMAC)); v.Phase != machines.PhaseBooted {
		t.Errorf("phase %q after the callback", v.Phase)
	}
}
