//go:build integration

package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	nethttp "net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"gopkg.in/yaml.v3"

	"github.com/netbootd/netbootd/tests/netns"
)

// monitoringDir holds the alert rules and the Grafana dashboard, relative to this package.
const monitoringDir = "../deploy/monitoring"

// documentedFamilies are the metric families README.md's "Metrics" section lists; a run with the
// fast path and a little DHCP, TFTP and HTTP traffic exports every one of them.
var documentedFamilies = []string{
	"netbootd_dhcp_requests_total", "netbootd_dhcp_replies_total", "netbootd_dhcp_drops_total",
	"netbootd_dhcp_request_duration_seconds", "netbootd_dhcp_queue_depth",
	"netbootd_dhcp_pool_addresses", "netbootd_dhcp_pool_used_addresses",
	"netbootd_lease_commit_duration_seconds", "netbootd_lease_commit_errors_total",
	"netbootd_xdp_packets_total", "netbootd_xdp_reservations", "netbootd_xdp_known_macs",
	"netbootd_tftp_transfers_started_total", "netbootd_tftp_transfers_completed_total",
	"netbootd_tftp_transfers_failed_total", "netbootd_tftp_bytes_sent_total",
	"netbootd_tftp_retransmitted_blocks_total", "netbootd_tftp_active_transfers",
	"netbootd_tftp_negotiated_blksize", "netbootd_tftp_negotiated_windowsize",
	"netbootd_tftp_file_transfers_total",
	"netbootd_http_requests_total", "netbootd_http_request_duration_seconds",
	"netbootd_http_response_bytes_total", "netbootd_http_active_requests",
	"netbootd_boot_duration_seconds", "netbootd_boot_machines", "netbootd_boot_machines_evicted_total",
}

var metricNameRE = regexp.MustCompile(`^netbootd_[a-z]+_[a-z_]+$`)

// promServerIP is the server's address in the rack; netbootd's boot HTTP is on :8080, /metrics
// on the management listener (defaultMgmtAddr).
const promServerIP = "10.10.0.1"

// promRack is a rack whose netbootd runs the XDP fast path (generic mode, pinned in a test bpffs)
// and has served real clients: a reserved machine (answered by XDP), a stranger from the pool
// (the control plane) that fetched iPXE over TFTP, a missing file, the chain script and the
// machine API over HTTP and said "booted", and a stranger that released its lease.
type promRack struct {
	*rack
	d *daemon
}

func newPromRack(t *testing.T) *promRack {
	t.Helper()
	return newPromRackWith(t, nil)
}

// newPromRackWith runs before(r) once the namespaces exist and before netbootd starts.
func newPromRackWith(t *testing.T, before func(*promRack)) *promRack {
	t.Helper()
	if _, err := os.Stat("/usr/lib/ipxe/undionly.kpxe"); err != nil {
		t.Fatalf("Debian's ipxe package is not installed (scripts/deps.sh): %v", err)
	}
	r := &promRack{rack: newXDPRack(t)}
	if before != nil {
		before(r)
	}
	pins := pinDir(t, r.rack)
	r.d = startNetbootd(t, r.server, "sv0", promServerIP, rackConfig, "", "--xdp", "generic", "--pin-dir", pins)
	return r
}

// traffic drives real clients through DHCP, TFTP and HTTP.
func (r *promRack) traffic(t *testing.T) {
	t.Helper()
	if got := udhcpcOnce(t, r.client(t, "02:00:00:00:00:0a")); got["ip"] != "10.10.0.10" {
		t.Fatalf("reserved client got %v", got)
	}
	stranger := r.client(t, "02:00:00:00:0d:01")
	if got := udhcpcOnce(t, stranger); !strings.HasPrefix(got["ip"], "10.10.0.1") {
		t.Fatalf("stranger got %v", got)
	}
	dir := t.TempDir()
	local := filepath.Join(dir, "undionly.kpxe")
	if out, err := stranger.Exec("tftp", "-m", "binary", "10.10.0.1", "-c", "get", "undionly.kpxe", local); err != nil || strings.Contains(strings.ToLower(out), "error") {
		t.Fatalf("tftp-hpa get undionly.kpxe: %v\n%s", err, out)
	}
	if out, err := stranger.Exec("atftp", "--get", "-r", "undionly.kpxe", "-l", local+".win", "--option", "windowsize 8", "--option", "blksize 1468", "10.10.0.1"); err != nil {
		t.Fatalf("atftp get undionly.kpxe: %v\n%s", err, out)
	}
	// A missing file: a TFTP failure with reason not_found (tftp-hpa reports it, exit status aside).
	if out, _ := stranger.Exec("tftp", "-m", "binary", "10.10.0.1", "-c", "get", "missing.efi", filepath.Join(dir, "missing")); !strings.Contains(strings.ToLower(out), "not found") {
		t.Fatalf("tftp-hpa get missing.efi: no error:\n%s", out)
	}
	base := "http://" + r.d.httpAddr
	for _, args := range [][]string{
		{"-sf", "-o", "/dev/null", base + "/ipxe/boot.ipxe"},
		{"-sf", "-o", "/dev/null", "-X", "POST", "--data", "test booted", base + "/booted/02:00:00:00:0d:01"},
	} {
		if out, err := stranger.Exec("curl", args...); err != nil {
			t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The API is the operator's, on the management listener.
	if out, err := r.server.Exec("curl", "-sf", "-o", "/dev/null", "http://"+r.d.mgmtAddr+"/api/v1/machines"); err != nil {
		t.Fatalf("curl /api/v1/machines on the management listener: %v\n%s", err, out)
	}
	// A stranger releases its lease, sent from its address as a client does (busybox 1.35's
	// `udhcpc -q -R` says it released but sent nothing here). The control plane handles it
	// without a reply: a drop with reason no_reply_needed.
	mac := "02:00:00:00:0d:02"
	c := r.client(t, mac)
	ip := mustAddr(t, udhcpcOnce(t, c)["ip"])
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatal(err)
	}
	release, err := dhcpv4.New(dhcpv4.WithMessageType(dhcpv4.MessageTypeRelease), dhcpv4.WithHwAddr(hw),
		dhcpv4.WithClientIP(ip.AsSlice()), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 10, 0, 1))))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Do(t, func() error {
		conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: ip.AsSlice(), Port: 68}, &net.UDPAddr{IP: net.IPv4(10, 10, 0, 1), Port: 67})
		if err != nil {
			return err
		}
		defer conn.Close()
		_, err = conn.Write(release.ToBytes())
		return err
	}); err != nil {
		t.Fatalf("send DHCPRELEASE: %v", err)
	}
	waitFor(t, "the RELEASE handled", func() bool {
		return r.d.metric("netbootd_dhcp_drops_total", `reason="no_reply_needed"`) >= 1
	})
}

// scrapeMetrics returns the text exposition of /metrics.
func scrapeMetrics(d *daemon) string {
	d.t.Helper()
	out, err := d.ns.Exec("curl", "-sf", "http://"+d.mgmtAddr+"/metrics")
	if err != nil {
		d.t.Fatalf("GET /metrics: %v: %s", err, out)
	}
	return out
}

// metricFamilyNames returns the metric family names of a text exposition, from its # TYPE lines.
func metricFamilyNames(exposition string) []string {
	var names []string
	for _, line := range strings.Split(exposition, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			names = append(names, f[2])
		}
	}
	sort.Strings(names)
	return names
}

// The metrics a real run exports pass promlint, are named netbootd_<subsystem>_<name>, and
// include every family README.md documents.
func TestPromlint(t *testing.T) {
	r := newPromRack(t)
	r.traffic(t)
	out := scrapeMetrics(r.d)

	problems, err := promlint.New(strings.NewReader(out)).Lint()
	if err != nil {
		t.Fatalf("promlint cannot parse /metrics: %v\n%s", err, out)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	names := metricFamilyNames(out)
	if len(names) == 0 {
		t.Fatalf("no metric families in /metrics:\n%s", out)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_") {
			continue // client_golang's standard Go runtime and process collectors
		}
		if !metricNameRE.MatchString(n) {
			t.Errorf("metric %q does not match %s", n, metricNameRE)
		}
	}
	for _, want := range documentedFamilies {
		if !slices.Contains(names, want) {
			t.Errorf("documented metric %s is not exported", want)
		}
	}
	for _, want := range []struct{ name, match string }{
		{"netbootd_xdp_packets_total", `result="ack"`},
		{"netbootd_dhcp_replies_total", `type="ACK"`},
		{"netbootd_tftp_transfers_completed_total", ""},
		{"netbootd_tftp_transfers_failed_total", `reason="not_found"`},
		{"netbootd_boot_duration_seconds_count", ""},
	} {
		if v := r.d.metric(want.name, want.match); v <= 0 {
			t.Errorf("%s{%s} = %v after the traffic, want > 0", want.name, want.match, v)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", out)
	}
}

// lookPromBinary finds a binary of Debian's prometheus package or fails the test loudly.
func lookPromBinary(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Debian's package `prometheus` (scripts/deps.sh): %v", name, err)
	}
	return p
}

// promServer is a real Prometheus running in a test namespace.
type promServer struct {
	t    *testing.T
	ns   *netns.NS
	addr string
	log  syncBuffer

	// conn is a keep-alive HTTP connection to addr, its socket made inside ns (net/http's
	// Transport dials on goroutines of its own, which would be outside the namespace).
	conn net.Conn
	br   *bufio.Reader
}

// get sends one GET over the connection (dialing it first inside the namespace, again after an
// error or a close) and returns the body, whatever the status.
func (p *promServer) get(pathQuery string) ([]byte, error) {
	p.t.Helper()
	if p.conn == nil {
		if err := p.ns.Do(p.t, func() error {
			c, err := net.DialTimeout("tcp", p.addr, 2*time.Second)
			p.conn = c
			return err
		}); err != nil {
			return nil, err
		}
		p.br = bufio.NewReader(p.conn)
	}
	body, closeAfter, err := func() ([]byte, bool, error) {
		req, err := nethttp.NewRequest(nethttp.MethodGet, "http://"+p.addr+pathQuery, nil)
		if err != nil {
			return nil, true, err
		}
		_ = p.conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := req.Write(p.conn); err != nil {
			return nil, true, err
		}
		resp, err := nethttp.ReadResponse(p.br, req)
		if err != nil {
			return nil, true, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return b, resp.Close || err != nil, err
	}()
	if closeAfter {
		p.conn.Close()
		p.conn = nil
	}
	return body, err
}

// startPrometheus runs Debian's prometheus in ns with its own config and storage, scraping target
// every second and evaluating the alert rules of deploy/monitoring every second.
func startPrometheus(t *testing.T, ns *netns.NS, target string) *promServer {
	t.Helper()
	bin := lookPromBinary(t, "prometheus")
	rules, err := filepath.Abs(filepath.Join(monitoringDir, "netbootd-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: netbootd
    static_configs: [{targets: [%q]}]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &promServer{t: t, ns: ns, addr: "127.0.0.1:9090"}
	cmd := ns.Cmd(t, bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+p.addr)
	cmd.Stdout, cmd.Stderr = &p.log, &p.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		if p.conn != nil {
			p.conn.Close()
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", p.log.String())
		}
	})
	deadline := time.Now().Add(patience)
	for {
		select {
		case <-done:
			t.Fatalf("prometheus exited early: %v\n%s", cmd.ProcessState, p.log.String())
		default:
		}
		if out, err := p.get("/-/ready"); err == nil && strings.Contains(string(out), "Ready") {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after %v:\n%s", patience, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promCheck is an instant query that must return one series whose value passes ok.
type promCheck struct {
	expr string
	ok   func(float64) bool
	want string
}

// expect polls the checks until all pass; after timeout it fails the test with those that do not.
func (p *promServer) expect(checks []promCheck, timeout time.Duration) {
	p.t.Helper()
	last := make([]string, len(checks))
	deadline := time.Now().Add(timeout)
	for {
		pending := 0
		for i, c := range checks {
			if last[i] == "ok" {
				continue
			}
			ss, err := p.query(c.expr)
			switch {
			case err != nil:
				last[i] = err.Error()
			case len(ss) != 1:
				last[i] = fmt.Sprintf("%d series: %v", len(ss), ss)
			case !c.ok(ss[0].value()):
				last[i] = fmt.Sprintf("value %v", ss[0].value())
			default:
				last[i] = "ok"
				continue
			}
			pending++
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			for i, c := range checks {
				if last[i] != "ok" {
					p.t.Errorf("Prometheus: %s, want %s: %s", c.expr, c.want, last[i])
				}
			}
			p.t.FailNow()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitFor polls an instant query until it returns a series.
func (p *promServer) waitFor(expr string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ss, err := p.query(expr)
		if err == nil && len(ss) > 0 {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("Prometheus: no series for %s after %v (%v)", expr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promSample is one element of an instant vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSample) value() float64 {
	str, _ := s.Value[1].(string)
	v, _ := strconv.ParseFloat(str, 64)
	return v
}

// api GETs an API path with query parameters from inside the namespace; it returns the "data"
// of a successful answer, or an error with Prometheus's message.
func (p *promServer) api(path string, params url.Values) (json.RawMessage, error) {
	out, err := p.get(path + "?" + params.Encode())
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", path, err)
	}
	var resp struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("GET %s: %v: %s", path, err, out)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("GET %s %v: %s: %s", path, params, resp.Status, resp.Error)
	}
	return resp.Data, nil
}

// query runs an instant query.
func (p *promServer) query(expr string) ([]promSample, error) {
	data, err := p.api("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, err
	}
	var v struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", expr, err, data)
	}
	if v.ResultType != "vector" {
		return nil, nil // a scalar or string: no series, but the query is valid
	}
	var ss []promSample
	if err := json.Unmarshal(v.Result, &ss); err != nil {
		return nil, fmt.Errorf("%s: %v: %s", expr, err, data)
	}
	return ss, nil
}

// A real Prometheus (Debian's) scrapes netbootd's /metrics and sees the traffic real clients made:
// DHCP answered by XDP and by the control plane, TFTP, HTTP, a boot. It also loads the alert
// rules of deploy/monitoring (all evaluate cleanly, none fires) and runs every dashboard query.
func TestPrometheusScrapesNetbootd(t *testing.T) {
	lookPromBinary(t, "prometheus")
	lookPromBinary(t, "promtool")
	// Prometheus first: it applies its scrape targets only a few seconds after it starts, and
	// netbootd's start overlaps that wait.
	var p *promServer
	// netbootd's management listener, in the server namespace, like Prometheus.
	r := newPromRackWith(t, func(r *promRack) { p = startPrometheus(t, r.server, defaultMgmtAddr) })
	// Traffic after the first scrape, so that rates (as the dashboard draws them) see it too.
	p.waitFor(`up{job="netbootd"} == 1`, patience)
	r.traffic(t)

	gt0 := func(v float64) bool { return v > 0 }
	p.expect([]promCheck{
		{`up{job="netbootd"}`, func(v float64) bool { return v == 1 }, "== 1"},
		{`netbootd_dhcp_replies_total{job="netbootd", type="ACK"}`, gt0, "> 0"},
		{`netbootd_xdp_packets_total{job="netbootd", result="ack"}`, gt0, "> 0"},
		{`netbootd_xdp_reservations{job="netbootd"}`, func(v float64) bool { return v == 2 }, "== 2"},
		{`netbootd_tftp_transfers_completed_total{job="netbootd"}`, func(v float64) bool { return v >= 2 }, ">= 2"},
		{`netbootd_tftp_transfers_failed_total{job="netbootd", reason="not_found"}`, gt0, "> 0"},
		{`sum(netbootd_http_requests_total{job="netbootd", handler="chain", code="200"})`, gt0, "> 0"},
		{`netbootd_dhcp_pool_addresses{job="netbootd", subnet="10.10.0.0/24"}`, func(v float64) bool { return v == 51 }, "== 51"},
		{`netbootd_boot_duration_seconds_count{job="netbootd"}`, func(v float64) bool { return v >= 1 }, ">= 1"},
		{`netbootd_boot_machines{job="netbootd", phase="booted"}`, func(v float64) bool { return v >= 1 }, ">= 1"},
	}, patience)

	// A second round of DHCP, now that every counter has a sample: what the dashboard's "DHCP
	// replies by path" panel draws (a rate needs two samples of a series) shows both paths.
	if got := udhcpcOnce(t, r.client(t, "02:00:00:00:00:0b")); got["ip"] != "10.10.0.11" {
		t.Fatalf("reserved client got %v", got)
	}
	udhcpcOnce(t, r.client(t, "02:00:00:00:0d:03"))
	p.expect([]promCheck{
		{`sum(rate(netbootd_xdp_packets_total{job="netbootd", result="ack"}[1m]))`, gt0, "> 0"},
		{`sum(rate(netbootd_dhcp_replies_total{job="netbootd", type="ACK"}[1m]))`, gt0, "> 0"},
		// The last series the first round made has two samples too, so every rate has data.
		{`count_over_time(netbootd_dhcp_drops_total{job="netbootd", reason="no_reply_needed"}[1m])`,
			func(v float64) bool { return v >= 2 }, ">= 2"},
	}, patience)

	// The alert rules: loaded, every rule evaluated without error.
	rulesDeadline := time.Now().Add(patience)
	var rulesData struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Name      string `json:"name"`
				Query     string `json:"query"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
				State     string `json:"state"`
			} `json:"rules"`
		} `json:"groups"`
	}
	for {
		data, err := p.api("/api/v1/rules", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &rulesData); err != nil {
			t.Fatalf("rules: %v: %s", err, data)
		}
		n, bad := 0, []string(nil)
		for _, g := range rulesData.Groups {
			for _, rule := range g.Rules {
				n++
				if rule.Health != "ok" {
					bad = append(bad, fmt.Sprintf("%s/%s: health %q %s", g.Name, rule.Name, rule.Health, rule.LastError))
				}
			}
		}
		if n > 0 && len(bad) == 0 {
			// A healthy netbootd that served this traffic trips none of them. A latency alert
			// (a quantile over a duration histogram) measures this machine's disk and CPU too:
			// on a busy CI machine it may be pending, which is what it should do there.
			for _, g := range rulesData.Groups {
				for _, rule := range g.Rules {
					switch {
					case rule.State == "inactive":
					case rule.State == "pending" && strings.Contains(rule.Query, "histogram_quantile"):
						t.Logf("latency alert %s is pending: this machine is slow right now", rule.Name)
					default:
						t.Errorf("alert %s is %s on a healthy netbootd", rule.Name, rule.State)
					}
				}
			}
			t.Logf("%d alert rules loaded and evaluated by Prometheus, none pending or firing", n)
			break
		}
		if time.Now().After(rulesDeadline) {
			t.Fatalf("alert rules in Prometheus: %d rules, not healthy:\n%s", n, strings.Join(bad, "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}

	// Every dashboard query is valid PromQL and, after this traffic, draws something: every
	// family it reads has a series with two samples by now.
	exprs := dashboardExprs(t)
	for _, e := range exprs {
		q := strings.NewReplacer("$__rate_interval", "1m", "$__range", "1h", "$instance", ".+").Replace(e)
		ss, err := p.query(q)
		if err != nil {
			t.Errorf("dashboard query %s: %v", e, err)
		} else if len(ss) == 0 {
			t.Errorf("dashboard query %s: no series", q)
		}
	}
	t.Logf("%d dashboard queries evaluated by Prometheus", len(exprs))
}

// dashboardExprs returns every "expr" of the Grafana dashboard, which must parse as JSON.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(monitoringDir, "netbootd-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("netbootd-dashboard.json: %v", err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(dash)
	if len(exprs) == 0 {
		t.Fatalf("netbootd-dashboard.json has no queries")
	}
	sort.Strings(exprs)
	return exprs
}

// sourceMetricNames greps the metric names the components register from their Go sources.
func sourceMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	re := regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(netbootd_[a-z]+_[a-z_]+)"`)
	names := map[string]bool{}
	for _, dir := range []string{"control", "bpf", "tftp", "http"} {
		err := filepath.WalkDir(filepath.Join("..", dir), func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range re.FindAllStringSubmatch(string(b), -1) {
				names[m[1]] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range documentedFamilies {
		if !names[want] {
			t.Errorf("documented metric %s not found in the sources (did its registration change?)", want)
		}
	}
	return names
}

// unknownMetrics returns the netbootd_* names in expr that no component registers; a histogram's
// _bucket, _count and _sum series count as their family.
func unknownMetrics(expr string, known map[string]bool) []string {
	var bad []string
	for _, n := range regexp.MustCompile(`netbootd_[a-z_]+`).FindAllString(expr, -1) {
		base := n
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && known[b] {
				base = b
			}
		}
		if !known[base] {
			bad = append(bad, n)
		}
	}
	return bad
}

// The alert rules pass promtool's checks and unit tests (pool exhaustion and TFTP failures fire on
// synthetic series, UEFI's benign option_refused does not); the dashboard is valid JSON, a
// Grafana import with a ${DS_PROMETHEUS} input, and queries only metrics netbootd registers.
func TestAlertRules(t *testing.T) {
	promtool := lookPromBinary(t, "promtool")
	rules := filepath.Join(monitoringDir, "netbootd-alerts.yml")
	if out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	unit := filepath.Join(monitoringDir, "netbootd-alerts_test.yml")
	if out, err := exec.Command(promtool, "test", "rules", unit).CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	} else {
		t.Logf("promtool test rules:\n%s", out)
	}

	// The unit tests cover what they must.
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &tests); err != nil {
		t.Fatalf("%s: %v", unit, err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, a := range []string{"NetbootdDHCPPoolNearlyExhausted", "NetbootdTFTPFailures"} {
		if !fires[a] || !quiet[a] {
			t.Errorf("%s: unit tests must show %s both firing and quiet (fires %v, quiet %v)", unit, a, fires[a], quiet[a])
		}
	}
	if !strings.Contains(string(b), `reason="option_refused"`) {
		t.Errorf("%s: no test feeds the benign option_refused failures", unit)
	}

	// Every rule has an operator-facing summary and description, and uses known metrics.
	known := sourceMetricNames(t)
	if b, err = os.ReadFile(rules); err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				Annotations map[string]string `yaml:"annotations"`
				Labels      map[string]string `yaml:"labels"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rf); err != nil {
		t.Fatalf("%s: %v", rules, err)
	}
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.Annotations["summary"] == "" || len(r.Annotations["description"]) < 80 {
				t.Errorf("alert %s: needs a summary and a description that says what to do", r.Alert)
			}
			if r.Labels["severity"] == "" {
				t.Errorf("alert %s: no severity label", r.Alert)
			}
			if bad := unknownMetrics(r.Expr, known); len(bad) > 0 {
				t.Errorf("alert %s uses metrics no component registers: %v", r.Alert, bad)
			}
		}
	}
	for _, a := range []string{"NetbootdXDPFastPathGone", "NetbootdXDPReservationsEmpty", "NetbootdXDPNotSeeingPackets",
		"NetbootdDHCPPoolNearlyExhausted", "NetbootdDHCPQueueFull", "NetbootdDHCPDropsLeaseStore",
		"NetbootdLeaseCommitErrors", "NetbootdTFTPFailures", "NetbootdBootsStalling"} {
		if !alerts[a] {
			t.Errorf("%s: no alert %s", rules, a)
		}
	}

	// The dashboard.
	b, err = os.ReadFile(filepath.Join(monitoringDir, "netbootd-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Inputs []struct {
			Name     string `json:"name"`
			Type     string `json:"type"`
			PluginID string `json:"pluginId"`
		} `json:"__inputs"`
		SchemaVersion int `json:"schemaVersion"`
		Panels        []struct {
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("netbootd-dashboard.json: %v", err)
	}
	if len(dash.Inputs) != 1 || dash.Inputs[0].Name != "DS_PROMETHEUS" || dash.Inputs[0].PluginID != "prometheus" {
		t.Errorf("dashboard __inputs = %+v, want the one Prometheus datasource DS_PROMETHEUS", dash.Inputs)
	}
	if dash.SchemaVersion < 36 {
		t.Errorf("dashboard schemaVersion %d, want a current Grafana's (39)", dash.SchemaVersion)
	}
	for _, p := range dash.Panels {
		if p.Type != "row" && (p.Datasource == nil || p.Datasource.UID != "${DS_PROMETHEUS}") {
			t.Errorf("panel %q: datasource is not ${DS_PROMETHEUS}", p.Title)
		}
	}
	used := map[string]bool{}
	for _, e := range dashboardExprs(t) {
		if bad := unknownMetrics(e, known); len(bad) > 0 {
			t.Errorf("dashboard query uses metrics no component registers: %v: %s", bad, e)
		}
		for _, n := range regexp.MustCompile(`netbootd_[a-z_]+`).FindAllString(e, -1) {
			used[n] = true
		}
	}
	// The panels the dashboard must have: both DHCP paths, drops, pools, lease commits, TFTP,
	// HTTP and boots.
	for _, n := range []string{"netbootd_xdp_packets_total", "netbootd_dhcp_replies_total", "netbootd_dhcp_drops_total",
		"netbootd_dhcp_pool_used_addresses", "netbootd_lease_commit_duration_seconds_bucket",
		"netbootd_tftp_transfers_completed_total", "netbootd_tftp_bytes_sent_total", "netbootd_tftp_transfers_failed_total",
		"netbootd_tftp_active_transfers", "netbootd_http_requests_total", "netbootd_http_response_bytes_total",
		"netbootd_boot_machines", "netbootd_boot_duration_seconds_bucket"} {
		if !used[n] {
			t.Errorf("dashboard has no panel on %s", n)
		}
	}
}

// --metrics-listen serves the same registry on an address of its own, without the API; the
// boot listener serves neither.
func TestMetricsListen(t *testing.T) {
	r := newRack(t)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", "--xdp", "off", "--metrics-listen", "127.0.0.1:9188")
	out, err := r.server.Exec("curl", "-sf", "http://127.0.0.1:9188/metrics")
	if err != nil || !strings.Contains(out, `netbootd_boot_machines{phase="dhcp"}`) || !strings.Contains(out, "netbootd_dhcp_pool_addresses") {
		t.Fatalf("GET /metrics on --metrics-listen: %v\n%.2000s", err, out)
	}
	for _, u := range []string{"http://127.0.0.1:9188/api/v1/machines", "http://" + d.httpAddr + "/metrics", "http://" + d.httpAddr + "/api/v1/leases"} {
		if code, _ := r.server.Exec("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", u); code != "404" {
			t.Errorf("GET %s = %s, want 404", u, code)
		}
	}
}
