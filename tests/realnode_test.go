//go:build integration

package tests

import (
	"archive/tar"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	nethttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/netns"
	"github.com/netbootd/netbootd/tests/node"
	"github.com/netbootd/netbootd/tests/qemu"
	"github.com/netbootd/netbootd/tests/xdppass"
)

// realNodePins is where the chart's pods pin the XDP program: the node's own bpffs.
const realNodePins = "/sys/fs/bpf/netbootd"

// The chart on a real single-node Kubernetes (tests/node: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet, containerd, runc), from make image's image:
// the DaemonSet rolls out with exactly the chart's capabilities; a Machine's client gets its
// reserved address from the pod's XDP program and the Machine's status is written back; a VM
// boots through the pod; helm upgrade to another version answers every one of a client's
// requests every 100 ms throughout, and the new pod adopts the pinned program; helm uninstall
// leaves no XDP program, no pins and no process behind.
func TestRealNodeChart(t *testing.T) {
	// Beside the VM tests: its host-wide parts (the kubelet's ports, the Service VIP, /var/lib/kubelet,
	// the kubepods cgroups) are the node's alone, behind node.Start's lock, and the kubelet's
	// sysctls are restored once it has set them (tests/node).
	t.Parallel()
	begin := time.Now()
	// The boot network: a veth whose host end the pod attaches to (a unique name, never the
	// host's own interfaces), its peer on a LAN bridge in a namespace of the test.
	lan := netns.New(t, "nbk")
	lan.Bridge(t, "br0")
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	iface := "nbb" + hex.EncodeToString(b)
	hostRun(t, "ip", "link", "add", iface, "type", "veth", "peer", "name", "svp", "netns", lan.Name())
	t.Cleanup(func() {
		// After the node's cleanup (registered later, so run first) stopped the pods: a failed
		// test's program and pins go too.
		_ = exec.Command(netbootdBin(t), "detach", "--pin-dir", realNodePins, iface).Run()
		_ = os.RemoveAll(filepath.Join(realNodePins, iface))
		_ = os.Remove(realNodePins)
		_ = exec.Command("ip", "link", "del", iface).Run()
	})
	hostRun(t, "ip", "addr", "add", "10.10.0.1/24", "dev", iface)
	hostRun(t, "ip", "link", "set", iface, "up")
	hostRun(t, "ethtool", "-K", iface, "tx", "off")
	lan.Run(t, "ip", "link", "set", "svp", "up")
	lan.Run(t, "ethtool", "-K", "svp", "tx", "off")
	lan.Enslave(t, "svp", "br0")
	// XDP_TX on a veth needs a program on its peer.
	if err := lan.Do(t, func() error { return xdppass.Attach("svp", false) }); err != nil {
		t.Fatal(err)
	}
	r := &rack{lan: lan}
	assets := bootAssets(t)

	n := node.Start(t)
	t.Logf("node %s Ready after %v", n.Name, time.Since(begin).Round(time.Second))
	tarball := os.Getenv("NETBOOTD_IMAGE")
	if tarball == "" {
		tarball = "../bin/image.tar"
	}
	tag := imageTag(t, tarball) // make image's tag: the version netbootd in it reports
	n.Import(t, tarball)

	chart, err := filepath.Abs(filepath.Join("..", "deploy", "helm", "netbootd"))
	if err != nil {
		t.Fatal(err)
	}
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte(fmt.Sprintf(`interface: %s
xdp: native
http: {host: 10.10.0.1, port: 8080}
image: {tag: %q, pullPolicy: Never}
stateDir: %s
assetsDir: %s
log: {format: text}
`, iface, tag, t.TempDir(), assets)), 0o644); err != nil {
		t.Fatal(err)
	}
	const ns, release, ds = "boot", "r12", "r12-netbootd"
	n.Helm(t, "install", release, chart, "--namespace", ns, "--create-namespace", "-f", values)
	n.Kubectl(t, "-n", ns, "rollout", "status", "ds/"+ds, "--timeout=5m")
	t.Logf("DaemonSet rolled out after %v", time.Since(begin).Round(time.Second))

	// Only the chart's capabilities, in the pod's netbootd.
	pid := podNetbootd(t, n)
	checkCaps(t, pid)

	mgmt := "http://" + node.IP + ":9180"
	metric := func(name string, match ...string) float64 { return httpMetric(t, mgmt, name, match...) }

	// A Machine: its client gets the reserved address from the pod's XDP program, and the pod
	// writes the Machine's status back.
	n.Apply(t, `apiVersion: netbootd.io/v1alpha1
kind: Machine
metadata: {name: client1, namespace: boot}
spec: {hostname: client1, interfaces: [{mac: "02:00:00:00:00:0a", ipv4: 10.10.0.10}]}
`)
	waitUntil(t, "the Machine in the pod's fast path", patience, func() bool { return metric("netbootd_xdp_reservations") >= 1 })
	c := r.client(t, "02:00:00:00:00:0a")
	acks := metric("netbootd_xdp_packets_total", `result="ack"`)
	if ip := udhcpcOnce(t, c)["ip"]; ip != "10.10.0.10" {
		t.Fatalf("the Machine's client got %q from the pod, want 10.10.0.10", ip)
	}
	if after := metric("netbootd_xdp_packets_total", `result="ack"`); after <= acks {
		t.Errorf("the Machine's client was not answered by the pod's XDP program (acks %v → %v)", acks, after)
	}
	waitUntil(t, "the Machine's status written back", patience, func() bool {
		out, err := n.KubectlErr("-n", ns, "get", "machine", "client1", "-o", "jsonpath={.status.lastDHCP} {.status.mac}")
		return err == nil && strings.Contains(out, "02:00:00:00:00:0a") && len(strings.Fields(out)) == 2
	})
	t.Logf("Machine client1 answered by XDP, status written back after %v", time.Since(begin).Round(time.Second))

	// A VM boots through the pod: iPXE from QEMU's ROM, the payload kernel from the assets
	// volume, the payload's "booted" callback; the Machine's status says booted.
	n.Apply(t, `apiVersion: netbootd.io/v1alpha1
kind: Profile
metadata: {name: payload, namespace: boot}
spec:
  kernel: vmlinuz
  initrds: [initrd.gz]
  args: "console=ttyS0 panic=-1 netbootd.profile=payload netbootd.host={{.Hostname}} netbootd.booted={{.BootedURL}}"
---
apiVersion: netbootd.io/v1alpha1
kind: Machine
metadata: {name: vm1, namespace: boot}
spec: {hostname: vm1, profile: payload, interfaces: [{mac: "52:54:00:00:10:01", ipv4: 10.10.0.11}]}
`)
	waitUntil(t, "both Machines in the pod's fast path", patience, func() bool { return metric("netbootd_xdp_reservations") >= 2 })
	vm := qemu.Start(t, lan, qemu.Options{Name: "vm1", Bridge: "br0", MAC: "52:54:00:00:10:01", NoRouterAdvertisements: true})
	if _, err := vm.WaitFor(qemu.Marker+" done", 5*time.Minute); err != nil {
		t.Fatalf("vm1 did not boot through the pod: %v", err)
	}
	serial := vm.Serial()
	if !strings.Contains(serial, qemu.Marker+" dhcp ip=10.10.0.11") || !strings.Contains(serial, qemu.Marker+" booted-callback ok") {
		t.Errorf("vm1: want its reserved 10.10.0.11 and the booted callback:\n%s", serial)
	}
	waitUntil(t, "Machine vm1 booted", patience, func() bool {
		out, err := n.KubectlErr("-n", ns, "get", "machine", "vm1", "-o", "jsonpath={.status.phase}")
		return err == nil && out == "booted"
	})
	t.Logf("vm1 booted through the pod after %v", time.Since(begin).Round(time.Second))

	// helm upgrade to an image of another version while the Machine's client asks every 100 ms.
	v1 := tag
	if got := metric("netbootd_build_info", `version="`+v1+`"`); got != 1 {
		t.Fatalf("the pod's netbootd_build_info{version=%q} = %v, want 1", v1, got)
	}
	v2 := v1 + ".next"
	n.Import(t, nextImage(t, v2))
	oldLogs := followLogs(t, n, ns)
	loop := startLeaseLoop(t, c, "10.10.0.10")
	loop.counted(t, 3)
	n.Helm(t, "upgrade", release, chart, "--namespace", ns, "-f", values, "--set", "image.tag="+strings.ReplaceAll(v2, "+", "-"))
	n.Kubectl(t, "-n", ns, "rollout", "status", "ds/"+ds, "--timeout=5m")
	loop.counted(t, 3)
	answered, failures := loop.stop()
	waitUntil(t, "the new pod's metrics", patience, func() bool { return metric("netbootd_build_info", `version="`+v2+`"`) == 1 })
	logs := n.Kubectl(t, "-n", ns, "logs", "ds/"+ds)
	if len(failures) != 0 || answered < 6 {
		t.Errorf("across helm upgrade: %d answered, %d unanswered, want all of at least 6 answered:\n%s\n--- the old pod's last words:\n%s\n--- the new pod:\n%s\n%s",
			answered, len(failures), strings.Join(failures, "\n---\n"), oldLogs.String(), logs, metricLines(mgmt, "netbootd_xdp_"))
		t.Logf("requests: %s", strings.Join(loop.log, ", "))
	} else {
		t.Logf("across helm upgrade: %d requests, all answered", answered)
	}
	if !strings.Contains(logs, "adopted_pinned=true") || !strings.Contains(logs, "version="+v2) {
		t.Errorf("the new pod did not adopt the pinned program or log its version %s:\n%s", v2, logs)
	}
	checkCaps(t, podNetbootd(t, n))
	t.Logf("upgraded to %s after %v", v2, time.Since(begin).Round(time.Second))

	// helm uninstall: the DaemonSet goes, its pod detaches the program and removes its pins.
	lastLogs := followLogs(t, n, ns)
	n.Helm(t, "uninstall", release, "--namespace", ns, "--wait")
	waitUntil(t, "the pod gone", 2*time.Minute, func() bool {
		out, err := n.KubectlErr("-n", ns, "get", "pods", "-o", "name")
		return err == nil && strings.TrimSpace(out) == "" && len(n.Leftovers()) == 0
	})
	if !strings.Contains(lastLogs.String(), "DaemonSet uninstalled: XDP program detached, pins removed") {
		t.Errorf("the uninstalled pod's last words lack the detach:\n%s", lastLogs.String())
	}
	if out := hostOut(t, "ip", "-d", "link", "show", "dev", iface); strings.Contains(out, "xdp") {
		t.Errorf("XDP program still on %s after helm uninstall:\n%s", iface, out)
	}
	if _, err := os.Stat(filepath.Join(realNodePins, iface)); !os.IsNotExist(err) {
		t.Errorf("pins %s/%s left after helm uninstall (%v)", realNodePins, iface, err)
	}
	if left := n.Leftovers(); len(left) != 0 {
		t.Errorf("processes left after helm uninstall: %v", left)
	}
	t.Logf("TestRealNodeChart took %v", time.Since(begin).Round(time.Second))
}

// followLogs follows the log of the one pod in ns from now on, until the pod ends: what a
// stopping pod says after it is gone.
func followLogs(t *testing.T, n *node.Node, ns string) *syncBuffer {
	t.Helper()
	pod := strings.TrimSpace(n.Kubectl(t, "-n", ns, "get", "pods", "-o", "name"))
	logs := &syncBuffer{}
	follow := n.KubectlCmd("-n", ns, "logs", "-f", "--since=1s", pod)
	follow.Stdout, follow.Stderr = logs, logs
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = follow.Process.Kill(); _ = follow.Wait() })
	return logs
}

// podNetbootd is the PID of the netbootd the kubelet runs (the only process of that name in a
// pod cgroup: one node per machine).
func podNetbootd(t *testing.T, n *node.Node) int {
	t.Helper()
	var pids []int
	waitUntil(t, "netbootd in a pod", patience, func() bool {
		pids = pids[:0]
		for _, pid := range n.Leftovers() {
			if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(comm)) == "netbootd" {
				pids = append(pids, pid)
			}
		}
		return len(pids) == 1
	})
	return pids[0]
}

// checkCaps fails the test unless pid's effective, permitted and bounding capability sets are
// exactly the chart's (chartCaps).
func checkCaps(t *testing.T, pid int) {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var want uint64
	for _, c := range chartCaps {
		want |= 1 << c
	}
	found := 0
	for _, line := range strings.Split(string(status), "\n") {
		for _, field := range []string{"CapEff:", "CapPrm:", "CapBnd:"} {
			if v, ok := strings.CutPrefix(line, field); ok {
				found++
				got, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				if got != want {
					t.Errorf("netbootd (pid %d) %s %#x, want %#x (NET_ADMIN NET_RAW NET_BIND_SERVICE BPF PERFMON)", pid, field, got, want)
				}
			}
		}
	}
	if found != 3 {
		t.Fatalf("/proc/%d/status: %d of CapEff, CapPrm, CapBnd found", pid, found)
	}
}

// httpMetric sums the samples of a metric family at base/metrics whose labels contain all of
// match; -1 when the listener does not answer (a pod between two others).
func httpMetric(t *testing.T, base, name string, match ...string) float64 {
	t.Helper()
	resp, err := (&nethttp.Client{Timeout: 5 * time.Second}).Get(base + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return -1
	}
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(line, m)
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); ok && err == nil {
			sum += v
		}
	}
	return sum
}

// imageTag is the tag of the image in make image's archive (its index.json names it for ctr).
func imageTag(t *testing.T, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatalf("%v (run make image, or set NETBOOTD_IMAGE)", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no index.json: %v", archive, err)
		}
		if h.Name != "index.json" {
			continue
		}
		var idx struct {
			Manifests []struct {
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&idx); err != nil || len(idx.Manifests) != 1 {
			t.Fatalf("%s: index.json: %v (%d manifests, want 1)", archive, err, len(idx.Manifests))
		}
		ref := idx.Manifests[0].Annotations["io.containerd.image.name"]
		if _, tag, ok := strings.Cut(ref, ":"); ok && strings.HasPrefix(ref, "ghcr.io/netbootd/netbootd:") {
			return tag
		}
		t.Fatalf("%s names %q, want ghcr.io/netbootd/netbootd:VERSION", archive, ref)
	}
}

// metricLines are the lines of base/metrics that start with prefix, for a failure message.
func metricLines(base, prefix string) string {
	resp, err := (&nethttp.Client{Timeout: 5 * time.Second}).Get(base + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// nextImage builds make image's image again (linux/amd64 only) with netbootd stamped as
// version, and returns its archive.
func nextImage(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "netbootd")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X github.com/netbootd/netbootd/control/buildinfo.version="+version, "-o", bin, "./cmd/netbootd")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build netbootd %s: %v\n%s", version, err, out)
	}
	img := exec.Command("go", "run", "./image", "-version", version, "-epoch", "0", "-binary", "linux/amd64="+bin, "-out", filepath.Join(dir, "image"))
	img.Dir = filepath.Join("..", "scripts", "release")
	if out, err := img.CombinedOutput(); err != nil {
		t.Fatalf("image %s: %v\n%s", version, err, out)
	}
	return filepath.Join(dir, "image.tar")
}

// leaseLoop is a client asking for its lease every 100 ms (udhcpc, one DISCOVER, 2 s to answer).
type leaseLoop struct {
	mu       sync.Mutex
	answered int
	failures []string
	log      []string // every request: when it began, whether it was answered
	quit     chan struct{}
	done     chan struct{}
}

func startLeaseLoop(t *testing.T, c *netns.NS, want string) *leaseLoop {
	t.Helper()
	l := &leaseLoop{quit: make(chan struct{}), done: make(chan struct{})}
	script := writeScript(t, udhcpcScript)
	go func() {
		defer close(l.done)
		for {
			began := time.Now().UTC().Format("15:04:05.000")
			out, err := c.Exec("busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "1", "-T", "2", "-s", script)
			l.mu.Lock()
			if err == nil && boundFields(out)["ip"] == want {
				l.answered++
				l.log = append(l.log, began+" answered")
			} else {
				l.failures = append(l.failures, "began "+began+": "+strings.TrimSpace(out))
				l.log = append(l.log, began+" UNANSWERED")
			}
			l.mu.Unlock()
			select {
			case <-l.quit:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { l.stop() })
	return l
}

// counted waits until the loop has made k more requests.
func (l *leaseLoop) counted(t *testing.T, k int) {
	t.Helper()
	l.mu.Lock()
	start := l.answered + len(l.failures)
	l.mu.Unlock()
	waitUntil(t, "the client's requests", patience, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.answered+len(l.failures) >= start+k
	})
}

// stop ends the loop: how many requests were answered, and the output of each that was not.
func (l *leaseLoop) stop() (int, []string) {
	select {
	case <-l.quit:
	default:
		close(l.quit)
	}
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answered, l.failures
}

func hostOut(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func hostRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
