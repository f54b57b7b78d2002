//go:build integration

package tests

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/netbootd/netbootd/control/config"
	kubetest "github.com/netbootd/netbootd/tests/kube"
)

const (
	helmRelease   = "r12"
	helmNamespace = "boot"
	// helmFullname is the chart's "<release>-netbootd".
	helmFullname = helmRelease + "-netbootd"
)

// helmCaps are exactly the capabilities netbootd checks at start (cmd/netbootd/caps.go).
var helmCaps = []string{"BPF", "NET_ADMIN", "NET_BIND_SERVICE", "NET_RAW", "PERFMON"}

// helmRBAC is exactly what netbootd does with the API: "group/resource" -> verbs.
var helmRBAC = map[string][]string{
	"netbootd.io/machines":        {"get", "list", "watch"},
	"netbootd.io/profiles":        {"get", "list", "watch"},
	"netbootd.io/machines/status": {"get", "patch"},
	"coordination.k8s.io/leases":  {"create", "get", "update"},
	"/events":                     {"create", "patch"},
	"apps/daemonsets":             {"get"},
}

// helmRBACNames limits a rule to one object: the pod's own DaemonSet, which it reads at its stop
// (gone: helm uninstall, detach the XDP program; there: a restart, keep it).
var helmRBACNames = map[string]string{"apps/daemonsets": helmFullname}

// helmFullValues turns on every optional part of the chart, with a rack's real configuration.
const helmFullValues = `
selector: rack=r12
http: {host: 10.12.0.1, port: 8080}
management: {port: 9190, tokenSecret: r12-netbootd-mgmt}
serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
ha: {enabled: true, peers: [a, b]}
podAnnotations: {example.com/owner: dc-ops}
tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms: [{matchExpressions: [{key: rack, operator: In, values: [r12]}]}]
imagePullSecrets: [{name: regcred}]
config:
  interface: {mode: authoritative, server_ip: 10.12.0.1}
  http: {assets: /srv/netbootd, base_url: "http://10.12.0.1:8080", max_downloads: 256, max_downloads_per_client: 2}
  dhcp: {offer_hold: 30s, storm: {per_source_rate: 50}}
  subnets:
    - cidr: 10.12.0.0/24
      pools: ["10.12.0.100-10.12.0.199"]
      lease_time: 3600
      options:
        router: 10.12.0.1
        dns: [10.12.0.1, 10.12.0.2]
        domain: r12.example
        custom: [{code: 66, type: string, value: "10.12.0.1"}]
  reservations:
    - {mac: "52:54:00:00:00:01", ip: 10.12.0.11, hostname: node01, labels: {role: worker}}
    - mac: "dc:a6:32:00:00:02"
      ip: 10.12.0.12
      pxe: {discovery_control: 3, boot_servers: [{type: 0, addrs: 10.12.0.1}], menu: [{type: 0, text: "Raspberry Pi Boot"}], prompt: {timeout: 0, text: PXE}}
  classes:
    - name: tinkerbell
      match: {user_class: Tinkerbell, arch: [7], vendor_class_prefix: PXEClient, mac_prefix: "52:54", circuit_id: r12, remote_id: sw1, client_id: "01:52:54:00:00:00:01"}
      ipxe: true
      boot_file: "http://10.12.0.1:8080/auto.ipxe"
      next_server: 10.12.0.1
      options: {domain: tink.example}
      profile: debian
    - {preset: raspberrypi, profile: rescue}
  profiles:
    - {name: debian, kernel: vmlinuz, initrds: [initrd.gz], args: "console=ttyS0"}
    - {name: rescue, script: "#!ipxe\nexit\n"}
  groups:
    - {name: workers, profile: debian, selector: {labels: {role: worker}}}
    - {name: pis, profile: rescue, selector: {classes: [raspberrypi]}}
  syslog: {listen: "10.12.0.1:514"}
`

// The Helm chart (deploy/helm/netbootd): helm lint --strict passes; bad values fail, naming the
// field; the rendered objects carry the security-relevant facts (hostNetwork, exactly five
// capabilities, no privileged, exactly the RBAC netbootd uses); the values schema describes the
// same configuration keys netbootd's parser knows; the rendered configuration parses and
// validates; and a real kube-apiserver accepts every object (server-side dry run, strict field
// validation) and authorizes the ServiceAccount for exactly what netbootd does.
func TestHelmChart(t *testing.T) {
	helm := kubetest.HelmBinary(t)
	chart, err := filepath.Abs(filepath.Join("..", "deploy", "helm", "netbootd"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(chart, "Chart.yaml")); err != nil {
		t.Fatalf("chart not found: %v", err)
	}
	h := &helmRunner{bin: helm, chart: chart, home: t.TempDir()}
	full := filepath.Join(t.TempDir(), "full.yaml")
	if err := os.WriteFile(full, []byte(helmFullValues), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("lint", func(t *testing.T) {
		for _, args := range [][]string{
			{"--set", "interface=eth1"},
			{"--set", "interface=eth1", "-f", full},
		} {
			out, err := h.run(append([]string{"lint", "--strict", chart, "--kube-version", kubetest.Version,
				"--namespace", helmNamespace}, args...)...)
			if err != nil {
				t.Fatalf("helm lint --strict %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})

	t.Run("bad values fail naming the field", func(t *testing.T) {
		unknownKey := filepath.Join(t.TempDir(), "typo.yaml")
		if err := os.WriteFile(unknownKey, []byte("interface: eth1\nnodeSelectr: {rack: r12}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		classTypo := filepath.Join(t.TempDir(), "class-typo.yaml")
		if err := os.WriteFile(classTypo, []byte("interface: eth1\nconfig: {classes: [{name: pi, profile: x, match: {vendor: PXEClient}}]}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		pxeTypo := filepath.Join(t.TempDir(), "pxe-typo.yaml")
		if err := os.WriteFile(pxeTypo, []byte("interface: eth1\nconfig: {reservations: [{mac: \"02:00:00:00:00:01\", pxe: {menus: []}}]}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		configTypo := filepath.Join(t.TempDir(), "config-typo.yaml")
		if err := os.WriteFile(configTypo, []byte("interface: eth1\nconfig: {subnets: [{cidr: 10.0.0.0/24, pool: [10.0.0.9-10.0.0.99]}]}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			cmd  string // lint or template
			args []string
			want []string // all in the output
		}{
			{"xdp mode", "lint", []string{"--set", "interface=eth1", "--set", "xdp=bogus"}, []string{"/xdp", "auto", "native", "generic", "off"}},
			{"xdp mode", "template", []string{"--set", "interface=eth1", "--set", "xdp=bogus"}, []string{"/xdp", "must be one of"}},
			{"log format", "template", []string{"--set", "interface=eth1", "--set", "log.format=xml"}, []string{"/log/format", "json", "text"}},
			{"unknown top-level key", "lint", []string{"-f", unknownKey}, []string{"nodeSelectr", "not allowed"}},
			{"unknown top-level key", "template", []string{"-f", unknownKey}, []string{"nodeSelectr", "not allowed"}},
			{"unknown config key", "template", []string{"-f", configTypo}, []string{"/config/subnets/0", "'pool'", "not allowed"}},
			{"unknown class match key", "template", []string{"-f", classTypo}, []string{"/config/classes/0/match", "'vendor'", "not allowed"}},
			{"unknown reservation pxe key", "template", []string{"-f", pxeTypo}, []string{"/config/reservations/0/pxe", "'menus'", "not allowed"}},
			{"state_dir is the chart's", "template", []string{"--set", "interface=eth1", "--set", "config.state_dir=/x"}, []string{"/config", "state_dir"}},
			{"ha with one peer", "lint", []string{"--set", "interface=eth1", "--set", "ha.enabled=true", "--set", "ha.peers={a}"}, []string{"/ha/peers", "minItems"}},
			{"ha with one peer", "template", []string{"--set", "interface=eth1", "--set", "ha.enabled=true", "--set", "ha.peers={a}"}, []string{"/ha/peers", "minItems"}},
			{"ha in reservation mode", "template", []string{"--set", "interface=eth1", "--set", "ha.enabled=true", "--set", "ha.peers={a,b}"}, []string{"ha.enabled", "authoritative"}},
			{"ha with no peers", "template", []string{"--set", "interface=eth1", "--set", "ha.enabled=true"}, []string{"/ha/peers", "minItems"}},
			// The template's own check, for installs that skip the schema.
			{"ha with one peer, no schema", "template", []string{"--skip-schema-validation", "--set", "interface=eth1", "--set", "ha.enabled=true", "--set", "ha.peers={a}"}, []string{"ha.peers", "at least 2"}},
			{"missing interface", "template", nil, []string{"interface", "--set interface=eth1"}},
			{"http port", "template", []string{"--set", "interface=eth1", "--set", "http.port=0"}, []string{"/http/port"}},
			{"management port", "template", []string{"--set", "interface=eth1", "--set", "management.port=0"}, []string{"/management/port"}},
			{"metricsPort is gone", "template", []string{"--set", "interface=eth1", "--set", "metricsPort=9180"}, []string{"metricsPort", "not allowed"}},
		} {
			args := []string{c.cmd}
			if c.cmd == "template" {
				args = append(args, helmRelease)
			} else {
				args = append(args, "--strict")
			}
			args = append(append(args, chart, "--kube-version", kubetest.Version, "--namespace", helmNamespace), c.args...)
			out, err := h.run(args...)
			if err == nil {
				t.Errorf("%s: helm %s succeeded, want a failure naming %q:\n%s", c.name, strings.Join(args, " "), c.want, out)
				continue
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("%s: helm %s failed without naming %q: %s", c.name, c.cmd, w, out)
				}
			}
		}
	})

	// The renders every later check uses: defaults, every option (a values file), and the
	// optional parts turned on with --set.
	defaults := h.render(t, "--set", "interface=eth1")
	every := h.render(t, "--set", "interface=eth1", "-f", full)
	haSet := h.render(t, "--set", "interface=eth1", "--set", "serviceMonitor.enabled=true,ha.enabled=true,ha.peers={a,b},config.interface.mode=authoritative")

	t.Run("rendered objects", func(t *testing.T) {
		checkHelmObjects(t, "defaults", defaults, false, false)
		checkHelmObjects(t, "ha and serviceMonitor via --set", haSet, true, true)
		checkHelmObjects(t, "every option", every, true, true)

		ds := helmFind(t, defaults, "DaemonSet")
		args := helmArgs(t, ds)
		if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--selector") }) {
			t.Errorf("defaults: --selector without a selector value: %q", args)
		}
		ds = helmFind(t, every, "DaemonSet")
		args = helmArgs(t, ds)
		for _, want := range []string{"--selector=rack=r12", "--http-listen=10.12.0.1:8080", "--mgmt-listen=$(POD_IP):9190",
			"--mgmt-token-file=/etc/netbootd-token/token", "--pool-peers=a,b"} {
			if !slices.Contains(args, want) {
				t.Errorf("every option: args lack %s: %q", want, args)
			}
		}
		if !slices.Contains(helmArgs(t, helmFind(t, defaults, "DaemonSet")), "--mgmt-listen=$(POD_IP):9180") {
			t.Errorf("defaults: the management listener is not on the pod IP, port 9180: %q", helmArgs(t, helmFind(t, defaults, "DaemonSet")))
		}
		if slices.ContainsFunc(helmArgs(t, helmFind(t, defaults, "DaemonSet")), func(a string) bool { return strings.HasPrefix(a, "--mgmt-token-file") }) {
			t.Error("defaults: a token file without management.tokenSecret")
		}
		// The token Secret is mounted where --mgmt-token-file reads it.
		mounted := false
		vols, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "volumes")
		for _, v := range vols {
			vm, _ := v.(map[string]any)
			if name, _, _ := unstructured.NestedString(vm, "secret", "secretName"); name == "r12-netbootd-mgmt" {
				mounted = true
			}
		}
		if !mounted {
			t.Errorf("every option: no volume of Secret r12-netbootd-mgmt: %v", vols)
		}
		svcPort := helmServicePort(t, helmFind(t, every, "Service"))
		if svcPort != 9190 {
			t.Errorf("Service port %d, want management.port 9190", svcPort)
		}
		// A configuration change rolls the pods.
		sumA, _, _ := unstructured.NestedString(helmFind(t, defaults, "DaemonSet").Object, "spec", "template", "metadata", "annotations", "checksum/config")
		sumB, _, _ := unstructured.NestedString(ds.Object, "spec", "template", "metadata", "annotations", "checksum/config")
		if sumA == "" || sumA == sumB {
			t.Errorf("checksum/config %q and %q: want set, and different for different configurations", sumA, sumB)
		}
	})

	t.Run("rendered configuration", func(t *testing.T) {
		// The ConfigMap's file is what netbootd reads: its strict parser must accept it.
		for _, c := range []struct {
			name     string
			objs     []*unstructured.Unstructured
			validate bool
		}{{"defaults", defaults, false}, {"every option", every, true}} {
			data, _, _ := unstructured.NestedString(helmFind(t, c.objs, "ConfigMap").Object, "data", "netbootd.yaml")
			cfg, err := config.Parse([]byte(data))
			if err != nil {
				t.Fatalf("%s: netbootd cannot parse the ConfigMap's netbootd.yaml: %v\n%s", c.name, err, data)
			}
			if !c.validate {
				continue
			}
			cfg.ApplyInterface(netip.MustParseAddr("10.12.0.1"), netip.MustParsePrefix("10.12.0.1/24"))
			// In the pod the assets volume is mounted there; here a stand-in directory.
			if cfg.HTTP.Assets != "/srv/netbootd" {
				t.Errorf("%s: http.assets %q, want /srv/netbootd (the assets volume)", c.name, cfg.HTTP.Assets)
			}
			cfg.HTTP.Assets = t.TempDir()
			if err := cfg.Validate(); err != nil {
				t.Fatalf("%s: netbootd rejects the ConfigMap's netbootd.yaml: %v\n%s", c.name, err, data)
			}
			if len(cfg.Subnets) != 1 || len(cfg.Reservations) != 2 || cfg.Subnets[0].LeaseTime.D() != time.Hour {
				t.Errorf("%s: parsed %d subnets, %d reservations, lease_time %s; want 1, 2, 1h",
					c.name, len(cfg.Subnets), len(cfg.Reservations), cfg.Subnets[0].LeaseTime.D())
			}
			// The classes (the preset expanded per Raspberry Pi OUI) and a reservation's option 43.
			if len(cfg.Classes) != 1+len(config.RaspberryPiOUIs) || cfg.Classes[0].Profile != "debian" ||
				cfg.Reservations[1].PXE == nil || !bytes.Contains(cfg.Reservations[1].PXE.Data, []byte("Raspberry Pi Boot")) {
				t.Errorf("%s: classes %+v, reservation pxe %+v: want tinkerbell and the raspberrypi preset, option 43 with the Pi menu",
					c.name, cfg.Classes, cfg.Reservations[1].PXE)
			}
		}
	})

	t.Run("schema describes netbootd's configuration", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(chart, "values.schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		var s map[string]any
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("values.schema.json: %v", err)
		}
		defs, _ := s["definitions"].(map[string]any)
		props, _ := s["properties"].(map[string]any)
		cfg, _ := props["config"].(map[string]any)
		if cfg == nil {
			t.Fatal("values.schema.json has no properties.config")
		}
		// The chart sets these on the command line (--state-dir, --http-listen).
		chartOwned := map[string]bool{"config.state_dir": true, "config.http.listen": true,
			"config.http.mgmt_listen": true, "config.http.mgmt_token_file": true}
		compareConfigSchema(t, "config", reflect.TypeFor[config.Config](), cfg, defs, chartOwned)
	})

	t.Run("kube-apiserver accepts every object", func(t *testing.T) {
		checkHelmWithAPIServer(t, defaults, every, haSet)
	})
}

// helmRunner runs the cached helm with its own empty home: no repositories, no plugins, no
// state from the machine.
type helmRunner struct {
	bin   string
	chart string
	home  string
}

func (h *helmRunner) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// render is `helm template` of release r12 in namespace boot, split into its objects. The
// cached helm is built without Kubernetes version ldflags and would assume v1.20 (which the
// chart's kubeVersion refuses): --kube-version says which Kubernetes the test runs.
func (h *helmRunner) render(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	all := append([]string{"template", helmRelease, h.chart, "--kube-version", kubetest.Version,
		"--namespace", helmNamespace}, args...)
	out, err := h.run(all...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(all, " "), err, out)
	}
	dec := k8syaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("helm template output is not YAML: %v\n%s", err, out)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	if len(objs) == 0 {
		t.Fatalf("helm %s rendered nothing", strings.Join(all, " "))
	}
	return objs
}

// checkHelmObjects asserts the security-relevant facts of one render.
func checkHelmObjects(t *testing.T, name string, objs []*unstructured.Unstructured, ha, serviceMonitor bool) {
	t.Helper()
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
		if o.GetNamespace() != helmNamespace {
			t.Errorf("%s: %s %s in namespace %q, want the release namespace %s", name, o.GetKind(), o.GetName(), o.GetNamespace(), helmNamespace)
		}
		for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
			if o.GetLabels()[l] == "" {
				t.Errorf("%s: %s %s lacks label %s", name, o.GetKind(), o.GetName(), l)
			}
		}
		helmWalk(o.Object, "", func(path string, v any) {
			switch {
			case strings.HasSuffix(path, ".privileged") && v == true,
				strings.HasSuffix(path, ".hostPID") && v == true,
				strings.HasSuffix(path, ".hostIPC") && v == true,
				strings.HasSuffix(path, ".allowPrivilegeEscalation") && v == true:
				t.Errorf("%s: %s %s sets %s: true", name, o.GetKind(), o.GetName(), path)
			}
		})
	}
	sort.Strings(kinds)
	want := []string{"ConfigMap", "DaemonSet", "Role", "RoleBinding", "Service", "ServiceAccount"}
	if serviceMonitor {
		want = append(want, "ServiceMonitor")
	}
	sort.Strings(want)
	if !slices.Equal(kinds, want) {
		t.Errorf("%s: rendered kinds %q, want exactly %q", name, kinds, want)
	}

	ds := helmFind(t, objs, "DaemonSet")
	pod, _, _ := unstructured.NestedMap(ds.Object, "spec", "template", "spec")
	if pod["hostNetwork"] != true {
		t.Errorf("%s: DaemonSet hostNetwork %v, want true (XDP and DHCP on the host's interface)", name, pod["hostNetwork"])
	}
	if pod["dnsPolicy"] != "ClusterFirstWithHostNet" {
		t.Errorf("%s: dnsPolicy %v, want ClusterFirstWithHostNet", name, pod["dnsPolicy"])
	}
	if cs, _, _ := unstructured.NestedSlice(pod, "containers"); len(cs) != 1 {
		t.Errorf("%s: %d containers, want 1", name, len(cs))
	}
	c := helmContainer(t, ds)
	sc, _, _ := unstructured.NestedMap(c, "securityContext")
	drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop")
	add, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "add")
	sort.Strings(add)
	if !slices.Equal(drop, []string{"ALL"}) || !slices.Equal(add, helmCaps) {
		t.Errorf("%s: capabilities drop %q add %q, want drop [ALL] add exactly %q", name, drop, add, helmCaps)
	}
	for k, want := range map[string]any{"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
		"runAsNonRoot": false, "runAsUser": int64(0)} {
		if got := sc[k]; !reflect.DeepEqual(helmNumber(got), want) {
			t.Errorf("%s: securityContext.%s %v, want %v", name, k, got, want)
		}
	}
	if p, _, _ := unstructured.NestedString(sc, "seccompProfile", "type"); p != "RuntimeDefault" {
		t.Errorf("%s: seccompProfile %q, want RuntimeDefault", name, p)
	}

	args := helmArgs(t, ds)
	if len(args) < 2 || args[0] != "attach" || args[1] != "eth1" {
		t.Errorf("%s: args %q, want attach eth1 first", name, args)
	}
	for _, w := range []string{"--in-cluster", "--kube-namespace=" + helmNamespace, "--state-dir=/var/lib/netbootd",
		"--pin-dir=/sys/fs/bpf/netbootd", "--config=/etc/netbootd/netbootd.yaml", "--log-format=json", "--xdp=auto",
		"--detach-with-daemonset=" + helmFullname} {
		if !slices.Contains(args, w) {
			t.Errorf("%s: args lack %s: %q", name, w, args)
		}
	}
	haArgs := []string{"--pool-lease=" + helmFullname + "-pool", "--identity=$(NODE_NAME)"}
	for _, w := range haArgs {
		if slices.Contains(args, w) != ha {
			t.Errorf("%s (ha %v): args have %s: %v: %q", name, ha, w, !ha, args)
		}
	}
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--http-listen=") }) {
		t.Errorf("%s: no --http-listen: %q", name, args)
	}
	env, _, _ := unstructured.NestedSlice(c, "env")
	nodeName := false
	for _, e := range env {
		em, _ := e.(map[string]any)
		if f, _, _ := unstructured.NestedString(em, "valueFrom", "fieldRef", "fieldPath"); em["name"] == "NODE_NAME" && f == "spec.nodeName" {
			nodeName = true
		}
	}
	if !nodeName {
		t.Errorf("%s: no env NODE_NAME from spec.nodeName (the HA identity): %v", name, env)
	}
	// The probes reach the management listener, bound to the pod IP, which is kubelet's default host.
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		p, _, _ := unstructured.NestedString(c, probe, "httpGet", "path")
		port, _, _ := unstructured.NestedFieldNoCopy(c, probe, "httpGet", "port")
		host, hasHost, _ := unstructured.NestedString(c, probe, "httpGet", "host")
		if p != path || port != "mgmt" || hasHost {
			t.Errorf("%s: %s %s on port %v host %q, want %s on port mgmt, no host (the pod IP)", name, probe, p, port, host, path)
		}
	}
	// The management listener is never bound to every address: only to the pod IP.
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--mgmt-listen=$(POD_IP):") }) {
		t.Errorf("%s: the management listener is not bound to $(POD_IP): %q", name, args)
	}
	podIP := false
	for _, e := range env {
		em, _ := e.(map[string]any)
		if f, _, _ := unstructured.NestedString(em, "valueFrom", "fieldRef", "fieldPath"); em["name"] == "POD_IP" && f == "status.podIP" {
			podIP = true
		}
	}
	if !podIP {
		t.Errorf("%s: no env POD_IP from status.podIP: %v", name, env)
	}

	// Volumes: exactly these host paths, the config and assets read-only.
	vols, _, _ := unstructured.NestedSlice(pod, "volumes")
	hostPaths := map[string]string{}
	for _, v := range vols {
		vm, _ := v.(map[string]any)
		if p, ok, _ := unstructured.NestedString(vm, "hostPath", "path"); ok {
			typ, _, _ := unstructured.NestedString(vm, "hostPath", "type")
			hostPaths[p] = typ
		}
	}
	wantPaths := map[string]string{"/sys/fs/bpf": "Directory", "/var/lib/netbootd/" + helmRelease: "DirectoryOrCreate",
		"/var/lib/netbootd-assets": "DirectoryOrCreate"}
	if !reflect.DeepEqual(hostPaths, wantPaths) {
		t.Errorf("%s: hostPath volumes %v, want exactly %v", name, hostPaths, wantPaths)
	}
	mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
	mountAt := map[string]bool{}
	for _, m := range mounts {
		mm, _ := m.(map[string]any)
		mountAt[fmt.Sprint(mm["mountPath"])] = mm["readOnly"] == true
	}
	for path, ro := range map[string]bool{"/etc/netbootd": true, "/srv/netbootd": true, "/var/lib/netbootd": false, "/sys/fs/bpf": false} {
		if got, ok := mountAt[path]; !ok || got != ro {
			t.Errorf("%s: mount %s (present %v, readOnly %v), want readOnly %v", name, path, ok, got, ro)
		}
	}

	// RBAC: exactly what netbootd uses, nothing wild.
	role := helmFind(t, objs, "Role")
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	got := map[string][]string{}
	for _, r := range rules {
		rm, _ := r.(map[string]any)
		groups, _, _ := unstructured.NestedStringSlice(rm, "apiGroups")
		resources, _, _ := unstructured.NestedStringSlice(rm, "resources")
		verbs, _, _ := unstructured.NestedStringSlice(rm, "verbs")
		for _, list := range [][]string{groups, resources, verbs} {
			if slices.Contains(list, "*") {
				t.Errorf("%s: Role rule %v has a wildcard", name, rm)
			}
		}
		names, _, _ := unstructured.NestedStringSlice(rm, "resourceNames")
		for _, g := range groups {
			for _, res := range resources {
				if want := helmRBACNames[g+"/"+res]; want == "" && len(names) > 0 || want != "" && !slices.Equal(names, []string{want}) {
					t.Errorf("%s: Role rule %v: resourceNames %q, want %q", name, rm, names, want)
				}
				got[g+"/"+res] = append(got[g+"/"+res], verbs...)
			}
		}
	}
	for k := range got {
		sort.Strings(got[k])
	}
	if !reflect.DeepEqual(got, helmRBAC) {
		t.Errorf("%s: Role grants %v, want exactly %v", name, got, helmRBAC)
	}
	rb := helmFind(t, objs, "RoleBinding")
	sa := helmFind(t, objs, "ServiceAccount")
	refName, _, _ := unstructured.NestedString(rb.Object, "roleRef", "name")
	refKind, _, _ := unstructured.NestedString(rb.Object, "roleRef", "kind")
	subjects, _, _ := unstructured.NestedSlice(rb.Object, "subjects")
	podSA, _, _ := unstructured.NestedString(pod, "serviceAccountName")
	if refKind != "Role" || refName != role.GetName() || len(subjects) != 1 || podSA != sa.GetName() {
		t.Errorf("%s: RoleBinding %s/%s subjects %v, pod ServiceAccount %q: want Role %s bound to ServiceAccount %s only",
			name, refKind, refName, subjects, podSA, role.GetName(), sa.GetName())
	} else if s, _ := subjects[0].(map[string]any); s["kind"] != "ServiceAccount" || s["name"] != sa.GetName() || s["namespace"] != helmNamespace {
		t.Errorf("%s: RoleBinding subject %v, want ServiceAccount %s/%s", name, s, helmNamespace, sa.GetName())
	}

	// The Service selects the pods; the ServiceMonitor selects the Service by its port name.
	svc := helmFind(t, objs, "Service")
	if ip, _, _ := unstructured.NestedString(svc.Object, "spec", "clusterIP"); ip != "None" {
		t.Errorf("%s: Service clusterIP %q, want None (headless)", name, ip)
	}
	sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
	podLabels, _, _ := unstructured.NestedStringMap(ds.Object, "spec", "template", "metadata", "labels")
	for k, v := range sel {
		if podLabels[k] != v {
			t.Errorf("%s: Service selector %v does not select the pods (labels %v)", name, sel, podLabels)
		}
	}
	if serviceMonitor {
		sm := helmFind(t, objs, "ServiceMonitor")
		eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		if len(eps) != 1 || len(ports) != 1 {
			t.Fatalf("%s: ServiceMonitor endpoints %v, Service ports %v: want one each", name, eps, ports)
		}
		ep, _ := eps[0].(map[string]any)
		port, _ := ports[0].(map[string]any)
		if ep["port"] != port["name"] || ep["path"] != "/metrics" {
			t.Errorf("%s: ServiceMonitor endpoint %v does not scrape Service port %v at /metrics", name, ep, port)
		}
		smSel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
		for k, v := range smSel {
			if svc.GetLabels()[k] != v {
				t.Errorf("%s: ServiceMonitor selector %v does not select the Service (labels %v)", name, smSel, svc.GetLabels())
			}
		}
	}
}

// compareConfigSchema checks that the values schema at path describes exactly the YAML keys of
// typ (netbootd's configuration types), object by object, each closed with
// additionalProperties: false, with a matching JSON type for booleans, integers and strings.
func compareConfigSchema(t *testing.T, path string, typ reflect.Type, s map[string]any, defs map[string]any, chartOwned map[string]bool) {
	t.Helper()
	for {
		ref, _ := s["$ref"].(string)
		if ref == "" {
			break
		}
		d, _ := defs[strings.TrimPrefix(ref, "#/definitions/")].(map[string]any)
		if d == nil {
			t.Errorf("%s: $ref %s not in definitions", path, ref)
			return
		}
		s = d
	}
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	pt := reflect.PointerTo(typ)
	textual := pt.Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
	custom := typ.Kind() != reflect.Struct && pt.Implements(reflect.TypeFor[yaml.Unmarshaler]())
	if textual || custom {
		return // a scalar (addresses, durations, MACs, ranges) or a type with its own syntax
	}
	jsonType := func() []string {
		switch v := s["type"].(type) {
		case string:
			return []string{v}
		case []any:
			var out []string
			for _, x := range v {
				out = append(out, fmt.Sprint(x))
			}
			return out
		}
		return nil
	}
	wantType := func(want string) {
		if got := jsonType(); !slices.Contains(got, want) {
			t.Errorf("%s: schema type %q, netbootd's %s wants %q", path, got, typ, want)
		}
	}
	switch typ.Kind() {
	case reflect.Struct:
		wantType("object")
		if s["additionalProperties"] != false {
			t.Errorf("%s: schema object without additionalProperties: false", path)
		}
		props, _ := s["properties"].(map[string]any)
		keys := map[string]bool{}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			keys[name] = true
			p := path + "." + name
			if chartOwned[p] {
				if _, ok := props[name]; ok {
					t.Errorf("%s: set by the chart on the command line; the schema must not offer it", p)
				}
				continue
			}
			sub, _ := props[name].(map[string]any)
			if sub == nil {
				t.Errorf("%s: netbootd's configuration has it (%s.%s) but values.schema.json does not: add it", p, typ, f.Name)
				continue
			}
			compareConfigSchema(t, p, f.Type, sub, defs, chartOwned)
		}
		for name := range props {
			if !keys[name] {
				t.Errorf("%s.%s: in values.schema.json but not a key of netbootd's %s: netbootd would refuse it", path, name, typ)
			}
		}
	case reflect.Slice, reflect.Array:
		wantType("array")
		items, _ := s["items"].(map[string]any)
		if items == nil {
			t.Errorf("%s: array schema without items", path)
			return
		}
		compareConfigSchema(t, path+"[]", typ.Elem(), items, defs, chartOwned)
	case reflect.Map:
		wantType("object")
	case reflect.Bool:
		wantType("boolean")
	case reflect.String:
		wantType("string")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		wantType("integer")
	}
}

// checkHelmWithAPIServer has a real kube-apiserver validate every rendered object against its
// OpenAPI schema (server-side dry run, unknown fields rejected), then creates the RBAC objects
// and asks the API server what the ServiceAccount may do.
func checkHelmWithAPIServer(t *testing.T, renders ...[]*unstructured.Unstructured) {
	c := kubetest.Start(t)

	// The Prometheus Operator's CRD is not in this cluster: a minimal ServiceMonitor CRD of our
	// own that accepts any spec. Only the object's presence and its apiVersion/kind are checked
	// by it, not its fields.
	smDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(smDir, "servicemonitors.yaml"), []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, listKind: ServiceMonitorList, plural: servicemonitors, singular: servicemonitor}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
`), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ApplyCRDs(t, smDir)

	dyn, err := dynamic.NewForConfig(c.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(c.RestConfig)
	if err != nil {
		t.Fatal(err)
	}
	// Discovery may list the new CRD a moment after it is served.
	var mapper meta.RESTMapper
	for deadline := time.Now().Add(patience); ; time.Sleep(200 * time.Millisecond) {
		groups, err := restmapper.GetAPIGroupResources(dc)
		if err != nil {
			t.Fatalf("discovery: %v", err)
		}
		mapper = restmapper.NewDiscoveryRESTMapper(groups)
		_, err = mapper.RESTMapping(schema.GroupKind{Group: "monitoring.coreos.com", Kind: "ServiceMonitor"}, "v1")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("discovery does not list ServiceMonitor: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	nsGVR := schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": helmNamespace}}}
	if _, err := dyn.Resource(nsGVR).Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", helmNamespace, err)
	}

	resource := func(o *unstructured.Unstructured) dynamic.ResourceInterface {
		t.Helper()
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: the API server does not serve %s: %v", o.GetKind(), o.GetName(), gvk, err)
		}
		if m.Scope.Name() != "namespace" {
			t.Errorf("%s %s is cluster-scoped: the chart should create namespaced objects only", o.GetKind(), o.GetName())
			return dyn.Resource(m.Resource)
		}
		return dyn.Resource(m.Resource).Namespace(o.GetNamespace())
	}
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict}
	n := 0
	for _, objs := range renders {
		for _, o := range objs {
			if _, err := resource(o).Create(ctx, o.DeepCopy(), dryRun); err != nil {
				t.Errorf("kube-apiserver rejects %s %s (dry run, strict): %v", o.GetKind(), o.GetName(), err)
			}
			n++
		}
	}
	t.Logf("kube-apiserver %s accepted %d rendered objects (dry run, strict field validation)", kubetest.Version, n)

	// The strict validation is live: a misspelt field in the DaemonSet is refused.
	bad := helmFind(t, renders[0], "DaemonSet").DeepCopy()
	if err := unstructured.SetNestedField(bad.Object, true, "spec", "template", "spec", "hostNetwrk"); err != nil {
		t.Fatal(err)
	}
	if _, err := resource(bad).Create(ctx, bad, dryRun); err == nil || !strings.Contains(err.Error(), "hostNetwrk") {
		t.Errorf("DaemonSet with spec.template.spec.hostNetwrk: %v, want a strict-validation error naming the field", err)
	}

	// The RBAC objects for real, then: may the ServiceAccount do exactly what netbootd does?
	for _, kind := range []string{"ServiceAccount", "Role", "RoleBinding"} {
		o := helmFind(t, renders[0], kind)
		if _, err := resource(o).Create(ctx, o.DeepCopy(), metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict}); err != nil {
			t.Fatalf("create %s %s: %v", kind, o.GetName(), err)
		}
	}
	user := "system:serviceaccount:" + helmNamespace + ":" + helmFullname
	type access struct {
		group, resource, sub, verb, ns, name string
		allowed                              bool
	}
	var checks []access
	for gr, verbs := range helmRBAC {
		group, res, _ := strings.Cut(gr, "/")
		res, sub, _ := strings.Cut(res, "/")
		for _, v := range verbs {
			checks = append(checks, access{group, res, sub, v, helmNamespace, helmRBACNames[gr], true})
		}
	}
	checks = append(checks,
		access{"netbootd.io", "machines", "", "delete", helmNamespace, "", false},
		access{"netbootd.io", "machines", "", "update", helmNamespace, "", false},
		access{"netbootd.io", "machines", "", "list", "default", "", false}, // other namespaces
		access{"", "secrets", "", "get", helmNamespace, "", false},
		access{"", "pods", "", "list", helmNamespace, "", false},
		access{"coordination.k8s.io", "leases", "", "delete", helmNamespace, "", false},
		access{"apps", "daemonsets", "", "get", helmNamespace, "other", false}, // only its own
		access{"apps", "daemonsets", "", "list", helmNamespace, "", false},
	)
	sarGVR := schema.GroupVersionResource{Group: "authorization.k8s.io", Version: "v1", Resource: "subjectaccessreviews"}
	for _, a := range checks {
		sar := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
			"spec": map[string]any{"user": user, "groups": []any{"system:serviceaccounts", "system:serviceaccounts:" + helmNamespace},
				"resourceAttributes": map[string]any{"group": a.group, "resource": a.resource, "subresource": a.sub,
					"verb": a.verb, "namespace": a.ns, "name": a.name}}}}
		// The RBAC authorizer learns new bindings from its informers: wait for a grant a moment.
		var allowed bool
		for deadline := time.Now().Add(patience); ; {
			res, err := dyn.Resource(sarGVR).Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("SubjectAccessReview: %v", err)
			}
			allowed, _, _ = unstructured.NestedBool(res.Object, "status", "allowed")
			if allowed == a.allowed || !a.allowed || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if allowed != a.allowed {
			what := a.group + "/" + a.resource
			if a.sub != "" {
				what += "/" + a.sub
			}
			t.Errorf("ServiceAccount %s: %s %s in namespace %s: allowed %v, want %v", user, a.verb, what, a.ns, allowed, a.allowed)
		}
	}
}

func helmFind(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	var found *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			if found != nil {
				t.Fatalf("two %s objects: %s and %s", kind, found.GetName(), o.GetName())
			}
			found = o
		}
	}
	if found == nil {
		t.Fatalf("no %s rendered", kind)
	}
	return found
}

func helmContainer(t *testing.T, ds *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "containers")
	if len(cs) == 0 {
		t.Fatalf("DaemonSet %s has no containers", ds.GetName())
	}
	c, _ := cs[0].(map[string]any)
	return c
}

func helmArgs(t *testing.T, ds *unstructured.Unstructured) []string {
	t.Helper()
	c := helmContainer(t, ds)
	if cmd, _, _ := unstructured.NestedStringSlice(c, "command"); !slices.Equal(cmd, []string{"netbootd"}) {
		t.Errorf("container command %q, want [netbootd]", cmd)
	}
	args, _, err := unstructured.NestedStringSlice(c, "args")
	if err != nil {
		t.Fatalf("container args: %v", err)
	}
	return args
}

func helmServicePort(t *testing.T, svc *unstructured.Unstructured) int64 {
	t.Helper()
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	if len(ports) != 1 {
		t.Fatalf("Service ports %v, want one", ports)
	}
	p, _ := ports[0].(map[string]any)
	n, _ := helmNumber(p["port"]).(int64)
	return n
}

// helmNumber makes YAML's and JSON's numbers comparable: float64 and int64 become int64.
func helmNumber(v any) any {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case int:
		return int64(n)
	case json.Number:
		i, _ := n.Int64()
		return i
	}
	return v
}

// helmWalk calls f on every value of a decoded object with its dotted path.
func helmWalk(v any, path string, f func(string, any)) {
	f(path, v)
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			helmWalk(e, path+"."+k, f)
		}
	case []any:
		for i, e := range x {
			helmWalk(e, fmt.Sprintf("%s[%d]", path, i), f)
		}
	}
}
