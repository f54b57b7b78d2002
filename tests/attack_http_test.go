//go:build integration

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootd/netbootd/control/bootauth"
	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/tests/netns"
)

// factsAttackConfig is a rack with a reserved machine and pool machines whose hostname (a fact iPXE
// reports) selects their profile: "decommission" wipes the disk.
const factsAttackConfig = `
interface: {mode: authoritative, server_ip: 10.10.0.1}
subnets:
  - cidr: 10.10.0.0/24
    pools: ["10.10.0.100-10.10.0.150"]
    lease_time: 10m
reservations:
  - {mac: "02:00:00:00:13:01", ip: 10.10.0.31, hostname: victim, labels: {role: worker}}
profiles:
  - name: worker
    kernel: vmlinuz
    args: "ds=nocloud-net;s={{.ConfigURL}}/ netbootd.booted={{.BootedURL}}"
    user_data: |
      #cloud-config
      password: SECRET-{{.Hostname}}
  - name: install
    kernel: vmlinuz
    args: "ds=nocloud-net;s={{.ConfigURL}}/"
    user_data: "#cloud-config\nhostname: {{.MAC}}\n"
  - name: wipe
    kernel: vmlinuz
    args: "wipe=all"
groups:
  - {name: workers, profile: worker, selector: {labels: {role: worker}}}
  - {name: decommission, profile: wipe, selector: {hostname: decommission}}
  - {name: default, profile: install}
`

const (
	victimMAC = "02:00:00:00:13:01"
	poolMAC   = "02:00:00:00:13:02"
	evilMAC   = "02:00:00:00:13:66"
)

// curlCode fetches url from ns and returns the status code and the body.
func curlCode(t *testing.T, ns *netns.NS, method, url string) (int, string) {
	t.Helper()
	out, err := ns.Exec("curl", "-s", "-X", method, "-w", "\n%{http_code}", "--max-time", "30", url)
	if err != nil {
		t.Fatalf("curl %s %s from %s: %v\n%s", method, url, ns.Name(), err, out)
	}
	i := strings.LastIndexByte(out, '\n')
	code, err := strconv.Atoi(out[i+1:])
	if err != nil {
		t.Fatalf("curl %s: no status: %q", url, out)
	}
	return code, out[:i]
}

// An attacker on the boot network, with an address of its own, reads no other machine's
// script or config, sets no other machine's facts or phase, and opens no timelines with made-up
// MACs; the machines themselves still get theirs, from their addresses and with the token
// netbootd put into their kernel arguments.
func TestAttackPerMachineHTTP(t *testing.T) {
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", factsAttackConfig, "", goPath...)
	base := "http://" + d.httpAddr

	st, err := os.Stat(filepath.Join(d.stateDir, bootauth.FileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token secret: %v, mode %v; want a 0600 file in the state dir", err, st)
	}

	victim, pool, evil := r.client(t, victimMAC), r.client(t, poolMAC), r.client(t, evilMAC)
	if ip := udhcpcOnce(t, victim)["ip"]; ip != "10.10.0.31" {
		t.Fatalf("victim got %q, want its reservation", ip)
	}
	poolIP := udhcpcOnce(t, pool)["ip"]
	evilIP := udhcpcOnce(t, evil)["ip"]
	t.Logf("victim 10.10.0.31, pool machine %s, attacker %s", poolIP, evilIP)

	// The machines fetch their own scripts and configs from their addresses.
	code, script := curlCode(t, victim, "GET", base+"/ipxe/script?mac=02-00-00-00-13-01&hostname=victim")
	tok := regexp.MustCompile(`s=\S+/configs/02-00-00-00-13-01/([A-Za-z0-9_-]+)/ `).FindStringSubmatch(script)
	if code != 200 || tok == nil {
		t.Fatalf("victim's own script = %d, no token in its config URL:\n%s", code, script)
	}
	if code, body := curlCode(t, victim, "GET", base+"/configs/02-00-00-00-13-01/user-data"); code != 200 || !strings.Contains(body, "SECRET-victim") {
		t.Fatalf("victim's own user-data = %d %q", code, body)
	}
	if code, body := curlCode(t, pool, "GET", base+"/ipxe/script?mac=02-00-00-00-13-02&hostname=pool1"); code != 200 || !strings.Contains(body, "ds=nocloud-net") {
		t.Fatalf("pool machine's own script = %d:\n%s", code, body)
	}
	// The kernel's own fetch may come from an address DHCP did not give (the server's, here):
	// the token in the URL netbootd rendered lets it in.
	if code, body := curlCode(t, r.server, "GET", base+"/configs/02-00-00-00-13-01/"+tok[1]+"/user-data"); code != 200 || !strings.Contains(body, "SECRET-victim") {
		t.Fatalf("user-data with the rendered token = %d %q", code, body)
	}

	var before []machines.Machine
	d.getJSON("/api/v1/machines", &before)

	// The attacker: configs, scripts and callbacks of others get 403 and no content.
	for _, a := range []struct{ method, path string }{
		{"GET", "/configs/02-00-00-00-13-01/user-data"},
		{"GET", "/configs/user-data?mac=02:00:00:00:13:01"},
		{"GET", "/configs/02-00-00-00-13-01/" + strings.Repeat("A", len(tok[1])) + "/user-data"},
		{"GET", "/ipxe/script?mac=02-00-00-00-13-01"},
		{"GET", "/ipxe/script?mac=02-00-00-00-13-02&hostname=decommission"}, // forged facts
		{"POST", "/booted/02:00:00:00:13:01"},
		{"GET", "/booted/02-00-00-00-13-02"},
	} {
		if code, body := curlCode(t, evil, a.method, base+a.path); code != 403 || body != "" {
			t.Errorf("attacker %s %s = %d %q, want 403 and no content", a.method, a.path, code, body)
		}
	}
	// Its own config by address is its own business.
	if code, body := curlCode(t, evil, "GET", base+"/configs/user-data"); code != 200 || !strings.Contains(body, evilMAC) {
		t.Errorf("attacker's own user-data = %d %q", code, body)
	}

	// A flood of made-up MACs and forged callbacks while the pool machine fetches its config.
	const flood = 6000
	urls := filepath.Join(t.TempDir(), "flood.curl")
	var b strings.Builder
	for i := 0; i < flood; i++ {
		mac := fmt.Sprintf("06-00-00-%02x-%02x-%02x", i>>16&0xff, i>>8&0xff, i&0xff)
		path := "/ipxe/script?mac=" + mac + "&hostname=decommission"
		switch i % 3 {
		case 1:
			path = "/booted/" + mac
		case 2:
			path = "/booted/02-00-00-00-13-02" // the pool machine's, forged
		}
		fmt.Fprintf(&b, "url = %q\noutput = \"/dev/null\"\n", base+path)
	}
	if err := os.WriteFile(urls, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var floodOut string
	var floodErr error
	var wg sync.WaitGroup
	wg.Add(1)
	floodStart := time.Now()
	var floodTook time.Duration
	go func() {
		defer wg.Done()
		defer func() { floodTook = time.Since(floodStart) }()
		floodOut, floodErr = evil.Exec("curl", "-s", "--parallel", "--parallel-max", "64", "-w", "%{http_code}\n", "-K", urls)
	}()
	lat, failed := legitFetches(t, pool, base+"/configs/02-00-00-00-13-02/user-data", &wg)
	wg.Wait()
	if floodErr != nil {
		t.Fatalf("flood: %v", floodErr)
	}
	codes := map[string]int{}
	for _, c := range strings.Fields(floodOut) {
		codes[c]++
	}
	if codes["403"] != flood {
		t.Errorf("flood answers %v, want %d × 403", codes, flood)
	}
	if len(lat) == 0 {
		t.Fatalf("no legit fetch succeeded during the flood (%d failed)", failed)
	}
	t.Logf("legit client under a flood of %d fake-MAC scripts and forged /booted (64 parallel, %.0f req/s): fetches %s "+
		"(reproduce: make build && NETBOOTD_BIN=$PWD/bin/netbootd go test -tags integration -count=1 -v -run TestAttackPerMachineHTTP ./tests/)",
		flood, flood/floodTook.Seconds(), latencySummary(lat, len(lat)+failed, 10*time.Microsecond))
	if failed > 0 {
		t.Errorf("%d of the legit client's fetches failed during the flood", failed)
	}

	// Nothing the attacker sent changed a machine or opened a timeline.
	var after []machines.Machine
	d.getJSON("/api/v1/machines", &after)
	byMAC := func(ms []machines.Machine) map[string]machines.Machine {
		out := map[string]machines.Machine{}
		for _, m := range ms {
			out[m.MAC] = m
		}
		return out
	}
	b4, now := byMAC(before), byMAC(after)
	if len(now) != len(b4) {
		var macs []string
		for m := range now {
			macs = append(macs, m)
		}
		t.Errorf("%d timelines after the flood, %d before: %v", len(now), len(b4), macs)
	}
	for _, mac := range []string{victimMAC, poolMAC} {
		m := now[mac]
		if m.Phase == machines.PhaseBooted || m.Profile != b4[mac].Profile || m.Reported.Hostname != b4[mac].Reported.Hostname {
			t.Errorf("%s changed by the attacker: %s", mac, describe(m))
		}
	}
	if p := now[poolMAC].Profile; p != "install" {
		t.Errorf("pool machine's profile %q, want install (its own hostname)", p)
	}
	if code, body := curlCode(t, pool, "GET", base+"/ipxe/script?mac=02-00-00-00-13-02&hostname=pool1"); code != 200 || strings.Contains(body, "wipe") {
		t.Errorf("pool machine's script after the attack = %d:\n%s", code, body)
	}
	// The machine's own callback still closes its timeline.
	if code, _ := curlCode(t, victim, "POST", base+"/booted/02-00-00-00-13-01/"+tok[1]); code != 200 {
		t.Errorf("victim's own booted callback = %d", code)
	}
	var v machines.Machine
	d.getJSON("/api/v1/machines/"+victimMAC, &v)
	if v.Phase != machines.PhaseBooted {
		t.Errorf("victim after its callback: %s", describe(v))
	}
}

// legitFetches fetches url from ns, one after another, until the flood (wg) ends (at least
// once), and returns the latencies of the fetches that got 200 and the number that did not.
func legitFetches(t *testing.T, ns *netns.NS, url string, flood *sync.WaitGroup) (lat []time.Duration, failed int) {
	t.Helper()
	done := make(chan struct{})
	go func() { flood.Wait(); close(done) }()
	for {
		out, err := ns.Exec("curl", "-s", "-o", "/dev/null", "--max-time", "30", "-w", "%{http_code} %{time_total}", url)
		var code int
		var secs float64
		if _, serr := fmt.Sscanf(out, "%d %g", &code, &secs); err != nil || serr != nil || code != 200 {
			failed++
			t.Logf("legit fetch: %v %q", err, out)
		} else {
			lat = append(lat, time.Duration(secs*float64(time.Second)))
		}
		select {
		case <-done:
			return lat, failed
		default:
		}
	}
}
