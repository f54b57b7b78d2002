// Package node starts a real single-node Kubernetes for tests: Debian's etcd, containerd, runc
// and CNI plugins; kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kubectl
// built by scripts/kube-tools/build.sh (tests/kube.Tool). Everything it starts is killed at
// cleanup, its mounts, cgroups and files removed and the sysctls the kubelet changes restored,
// even when the test fails. It fails loudly when a part is missing; it never skips.
//
// A kubelet and an API server behind the `kubernetes` Service VIP use fixed addresses and
// ports (10250, 10248, 10.96.0.1:443): one node per machine at a time, so Start waits for a
// machine-wide lock. Nothing else on the machine uses them, so a node runs beside other tests;
// the sysctls the kubelet sets are restored as soon as it has set them.
// docs/kubernetes-node-test.md says what each setting is for.
package node

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	kube "github.com/netbootd/netbootd/tests/kube"
	"github.com/netbootd/netbootd/tests/netns"
)

const (
	// ServiceVIP is the `kubernetes` Service's address, the first of the service range: with no
	// kube-proxy, the API server listens there itself, where in-cluster clients dial it.
	ServiceVIP = "10.96.0.1"
	// IP is the node's InternalIP (and so the pod IP of hostNetwork pods), from the benchmark
	// range (RFC 2544): never a real network's.
	IP = "198.18.17.1"
	// PauseImage is the pod sandbox image Start imports (registry.k8s.io cannot be reached).
	PauseImage = "localhost/netbootd-test-pause:1"

	lockPath = "/run/netbootd-test-node.lock"
	cniDir   = "/usr/lib/cni" // Debian's containernetworking-plugins
)

// kubeletSysctls are what the kubelet sets, once, when its container manager starts
// (pkg/kubelet/cm setupKernelTunables): the machine's own values come back as soon as the kubelet
// has set them, not only at cleanup, since other tests run beside the node and a machine that
// runs BPF tests must not reboot on an oops (kernel.panic_on_oops 1, kernel.panic 10).
var kubeletSysctls = map[string]string{
	"vm/overcommit_memory": "1", "vm/panic_on_oom": "0", "kernel/panic": "10", "kernel/panic_on_oops": "1",
	"kernel/keys/root_maxkeys": "1000000", "kernel/keys/root_maxbytes": "25000000",
}

// Node is a running single-node cluster owned by one test.
type Node struct {
	// Name is the Node object's name; it carries the label netbootd.io/boot-node=true.
	Name string
	// Kubeconfig is a kubeconfig file for the cluster's admin.
	Kubeconfig string

	t       testing.TB
	dir     string
	link    string // the host end of the veth that holds IP and ServiceVIP
	sock    string // containerd's socket
	bins    map[string]string
	procs   []*proc // in start order
	sysctls map[string]string
	created []string // host paths the kubelet and containerd make wherever they are told, absent before
	lock    *os.File
}

type proc struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
}

// Start brings up the node and waits until it is Ready. It waits first for any other test's
// node on this machine to be gone.
func Start(t testing.TB) *Node {
	t.Helper()
	netns.RequireRoot(t)
	n := &Node{t: t, bins: map[string]string{}}
	for _, b := range []string{"etcd", "containerd", "containerd-shim-runc-v2", "runc", "ctr"} {
		p, err := exec.LookPath(b)
		if err != nil {
			t.Fatalf("%s not found: %v (scripts/deps.sh installs etcd-server, containerd and runc)", b, err)
		}
		n.bins[b] = p
	}
	if _, err := os.Stat(filepath.Join(cniDir, "bridge")); err != nil {
		t.Fatalf("CNI plugins: %v (scripts/deps.sh installs containernetworking-plugins)", err)
	}
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"} {
		n.bins[b] = kube.Tool(t, b)
	}

	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		lock.Close()
		t.Fatalf("lock %s: %v", lockPath, err)
	}
	n.lock = lock
	t.Cleanup(func() { n.lock.Close() }) // last: after every other cleanup

	// The node's own link: a veth whose peer sits in a namespace of the test, holding the node
	// IP and the Service VIP (this kernel has no dummy links).
	peer := netns.New(t, "nbk")
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	n.Name = "nbnode-" + hex.EncodeToString(b)
	n.link = "nbn" + hex.EncodeToString(b)
	// tmpfs: etcd fsyncs every write; overlay snapshots and the kubelet's volumes work there.
	n.dir, err = os.MkdirTemp("/dev/shm", "netbootd-node-")
	if err != nil {
		t.Fatal(err)
	}
	n.saveSysctls()
	t.Cleanup(n.cleanup) // before the namespace's cleanup: processes go before the link

	n.run(t, "ip", "link", "add", n.link, "type", "veth", "peer", "name", "eth0", "netns", peer.Name())
	for _, a := range []string{IP, ServiceVIP} {
		n.run(t, "ip", "addr", "add", a+"/32", "dev", n.link)
	}
	n.run(t, "ip", "link", "set", n.link, "up")
	peer.Run(t, "ip", "link", "set", "eth0", "up")

	n.startControlPlane(t)
	n.startContainerd(t)
	n.startKubelet(t)
	return n
}

func (n *Node) startControlPlane(t testing.TB) {
	t.Helper()
	ca, caKey := newCA(t)
	n.write(t, "pki/ca.crt", pemCert(ca))
	cert, key := newServing(t, ca, caKey, []string{ServiceVIP, IP, "127.0.0.1"},
		[]string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"})
	n.write(t, "pki/apiserver.crt", cert)
	n.write(t, "pki/apiserver.key", key)
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	n.write(t, "pki/sa.key", string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)})))
	token := kube.RandomHex(t, 16)
	// Every part authenticates as a cluster admin: the test checks netbootd's pod, not the
	// cluster's own RBAC.
	n.write(t, "pki/tokens.csv", token+`,admin,admin-uid,"system:masters"`+"\n")
	n.Kubeconfig = n.write(t, "admin.kubeconfig", fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: node, cluster: {server: "https://%s:443", certificate-authority: %q}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: node, context: {cluster: node, user: admin}}]
current-context: node
`, ServiceVIP, n.path("pki/ca.crt"), token))

	clientPort, peerPort := kube.FreePort(t), kube.FreePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	n.start(t, "etcd", "--name", "node", "--data-dir", n.path("etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL, "--initial-cluster", "node="+peerURL)
	n.start(t, "kube-apiserver", "--etcd-servers="+etcdURL,
		"--bind-address="+ServiceVIP, "--secure-port=443", "--advertise-address="+IP,
		"--tls-cert-file="+n.path("pki/apiserver.crt"), "--tls-private-key-file="+n.path("pki/apiserver.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+n.path("pki/sa.key"), "--service-account-signing-key-file="+n.path("pki/sa.key"),
		"--token-auth-file="+n.path("pki/tokens.csv"), "--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		// kubectl logs reaches the kubelet at the node's InternalIP (no DNS for its name).
		"--kubelet-preferred-address-types=InternalIP", "--profiling=false")
	n.waitFor(t, "kube-apiserver /readyz", 2*time.Minute, "kube-apiserver", func() error {
		out, err := n.KubectlErr("get", "--raw", "/readyz")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	n.start(t, "kube-controller-manager", "--kubeconfig="+n.Kubeconfig, "--leader-elect=false",
		"--secure-port=0", "--root-ca-file="+n.path("pki/ca.crt"), // the pods' ca.crt
		"--service-account-private-key-file="+n.path("pki/sa.key"), "--profiling=false")
	n.start(t, "kube-scheduler", "--kubeconfig="+n.Kubeconfig, "--leader-elect=false", "--secure-port=0", "--profiling=false")
}

func (n *Node) startContainerd(t testing.TB) {
	t.Helper()
	// A CNI configuration before containerd starts (it does not see one added later), or the
	// node stays NotReady even for hostNetwork pods; its bridge is never created.
	n.write(t, "cni/10-netbootd-test.conflist", `{"cniVersion": "0.4.0", "name": "netbootd-test", "plugins": [
  {"type": "bridge", "bridge": "nbtestcni0", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "dataDir": "`+n.path("cni-ipam")+`"}}]}`)
	n.sock = n.path("containerd/containerd.sock")
	n.write(t, "containerd/config.toml", `version = 2
root = "`+n.path("containerd/root")+`"
state = "`+n.path("containerd/state")+`"
[grpc]
  address = "`+n.sock+`"
[ttrpc]
  address = "`+n.sock+`.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "`+n.path("containerd/opt")+`"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "`+PauseImage+`"
  # runc cannot lower oom_score_adj where the bounding set lacks CAP_SYS_RESOURCE.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "`+cniDir+`"
    conf_dir = "`+n.path("cni")+`"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
`)
	n.notePath("/run/containerd/runc/k8s.io")
	n.start(t, "containerd", "--config", n.path("containerd/config.toml"))
	n.waitFor(t, "containerd", time.Minute, "containerd", func() error {
		out, err := n.Ctr("version")
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	n.Import(t, n.pauseImage(t))
}

func (n *Node) startKubelet(t testing.TB) {
	t.Helper()
	n.notePath("/var/lib/kubelet")    // device-plugins/kubelet.sock, whatever --root-dir says
	n.notePath("/var/log/containers") // symlinks to the pod logs
	cfg := n.write(t, "kubelet/config.yaml", `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://`+n.sock+`
address: `+IP+`
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
# No systemd here, cgroup v1: cgroupfs, and no refusal to run on v1 or with swap.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
podLogsDir: `+n.path("pod-logs")+`
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
# A busy test machine's disk must not evict or garbage-collect the test's pods and images.
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
`)
	n.start(t, "kubelet", "--config="+cfg, "--kubeconfig="+n.Kubeconfig, "--root-dir="+n.path("kubelet"),
		"--cert-dir="+n.path("kubelet/pki"), "--hostname-override="+n.Name, "--node-ip="+IP,
		"--node-labels=netbootd.io/boot-node=true")
	n.waitFor(t, "node "+n.Name+" Ready", 3*time.Minute, "kubelet", func() error {
		out, err := n.KubectlErr("get", "node", n.Name, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		if err != nil || strings.TrimSpace(out) != "True" {
			return fmt.Errorf("condition Ready=%q %v", out, err)
		}
		return nil
	})
	// The kubelet sets its sysctls once, when its container manager starts (before or about when
	// the node is Ready): once they all read its values, the machine's own go back.
	n.waitFor(t, "the kubelet's sysctls", time.Minute, "kubelet", func() error {
		for s, want := range kubeletSysctls {
			if b, err := os.ReadFile("/proc/sys/" + s); err != nil || strings.TrimSpace(string(b)) != want {
				return fmt.Errorf("%s is %q (%v), the kubelet sets %s", s, strings.TrimSpace(string(b)), err, want)
			}
		}
		return nil
	})
	n.restoreSysctls(t)
}

// Kubectl runs kubectl as the admin and returns its output, failing the test on error.
func (n *Node) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.KubectlErr(args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// KubectlErr runs kubectl as the admin: its combined output and error.
func (n *Node) KubectlErr(args ...string) (string, error) {
	out, err := n.KubectlCmd(args...).CombinedOutput()
	return string(out), err
}

// KubectlCmd is kubectl as the admin, for the caller to start (kubectl logs -f).
func (n *Node) KubectlCmd(args ...string) *exec.Cmd {
	return exec.Command(n.bins["kubectl"], append([]string{"--kubeconfig", n.Kubeconfig}, args...)...)
}

// Apply applies the manifest (YAML) as the admin, failing the test on error.
func (n *Node) Apply(t testing.TB, manifest string) {
	t.Helper()
	f := n.write(t, "manifests/"+kube.RandomHex(t, 4)+".yaml", manifest)
	n.Kubectl(t, "apply", "-f", f)
}

// Helm runs helm against the node (its own cache and configuration under Dir), failing the test
// on error.
func (n *Node) Helm(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(kube.HelmBinary(t), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+n.Kubeconfig, "HELM_CACHE_HOME="+n.path("helm/cache"),
		"HELM_CONFIG_HOME="+n.path("helm/config"), "HELM_DATA_HOME="+n.path("helm/data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Ctr runs ctr on the node's containerd, in the namespace the kubelet's pods use (k8s.io).
func (n *Node) Ctr(args ...string) (string, error) {
	out, err := exec.Command(n.bins["ctr"], append([]string{"-a", n.sock, "-n", "k8s.io"}, args...)...).CombinedOutput()
	return string(out), err
}

// Import imports an image archive (OCI or Docker) into the node's containerd, every platform
// of it, where the kubelet finds it without pulling.
func (n *Node) Import(t testing.TB, archive string) {
	t.Helper()
	if out, err := n.Ctr("images", "import", "--all-platforms", archive); err != nil {
		t.Fatalf("ctr images import %s: %v\n%s", archive, err, out)
	}
}

// Logs is the tail of a part's log (etcd, kube-apiserver, containerd, kubelet, ...).
func (n *Node) Logs(name string, lines int) string { return tail(n.path(name+".log"), lines) }

func (n *Node) path(rel string) string { return filepath.Join(n.dir, rel) }

func (n *Node) write(t testing.TB, rel, s string) string {
	t.Helper()
	p := n.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (n *Node) run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// start runs one part in the background, its output in <dir>/<name>.log; the test process's
// death kills it too.
func (n *Node) start(t testing.TB, name string, args ...string) {
	t.Helper()
	logPath := n.path(name + ".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(n.bins[name], args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	n.procs = append(n.procs, p)
}

// waitFor polls f until it succeeds, failing the test with the tail of part's log, or at once
// when part exited.
func (n *Node) waitFor(t testing.TB, what string, timeout time.Duration, part string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		for _, p := range n.procs {
			select {
			case <-p.done:
				t.Fatalf("%s exited (%v) while waiting for %s\n--- tail of %s:\n%s", p.name, p.cmd.ProcessState, what, p.log, tail(p.log, 60))
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: %v\n--- tail of %s.log:\n%s", what, timeout, err, part, n.Logs(part, 60))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// notePath records p for removal at cleanup if it does not exist now.
func (n *Node) notePath(p string) {
	if _, err := os.Lstat(p); os.IsNotExist(err) {
		n.created = append(n.created, p)
	}
}

func (n *Node) saveSysctls() {
	n.sysctls = map[string]string{}
	for s := range kubeletSysctls {
		if b, err := os.ReadFile("/proc/sys/" + s); err == nil {
			n.sysctls[s] = strings.TrimSpace(string(b))
		}
	}
}

// restoreSysctls puts back the machine's values of the sysctls the kubelet changed.
func (n *Node) restoreSysctls(t testing.TB) {
	for s, v := range n.sysctls {
		if err := os.WriteFile("/proc/sys/"+s, []byte(v), 0o644); err != nil {
			t.Errorf("restore sysctl %s=%s: %v", s, v, err)
		}
	}
}

// cleanup stops everything in the order it depends on: the kubelet (no new containers), the
// containers and their shims, containerd, the control plane; then mounts, cgroups, host paths,
// sysctls, the link and the state directory.
func (n *Node) cleanup() {
	t := n.t
	if t.Failed() {
		t.Logf("node %s state at failure:\n%s", n.Name, n.diagnose())
	}
	n.stop("kubelet")
	if n.sock != "" {
		if out, err := n.Ctr("tasks", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _ = n.Ctr("tasks", "kill", "-s", "SIGKILL", id)
			}
			for _, id := range strings.Fields(out) {
				n.waitGone(func() bool { _, err := n.Ctr("tasks", "delete", id); return err == nil })
			}
		}
		if out, err := n.Ctr("containers", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _ = n.Ctr("containers", "delete", id)
			}
		}
	}
	n.stop("containerd")
	for _, name := range []string{"kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		n.stop(name)
	}
	// What outlived them: shims of this containerd, processes of the pods' cgroups.
	n.killLeftovers()
	unmountUnder(n.dir)
	for _, p := range n.created {
		if p == "/var/lib/kubelet" {
			unmountUnder(p)
		}
		_ = os.RemoveAll(p)
	}
	removeLinksInto("/var/log/containers", n.dir)
	removeCgroups("kubepods")
	n.restoreSysctls(t)
	_ = exec.Command("ip", "link", "del", n.link).Run()
	if err := os.RemoveAll(n.dir); err != nil {
		t.Errorf("remove the node's directory: %v", err)
	}
}

func (n *Node) stop(name string) {
	for _, p := range n.procs {
		if p.name != name {
			continue
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

func (n *Node) waitGone(done func() bool) {
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if done() {
			return
		}
	}
}

// killLeftovers kills the shims of this node's containerd and any process in a pod cgroup
// (only this node has pods on the machine: the lock).
func (n *Node) killLeftovers() {
	for i := 0; i < 50; i++ {
		pids := n.Leftovers()
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	n.t.Errorf("processes of node %s still running after SIGKILL: %v", n.Name, n.Leftovers())
}

// Leftovers are the processes the node started that still run other than its own parts:
// containers (in the kubepods cgroups) and containerd's shims.
func (n *Node) Leftovers() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cg, _ := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if bytes.Contains(cg, []byte("/kubepods")) || (n.sock != "" && bytes.Contains(cmdline, []byte(n.sock))) {
			if !n.own(pid) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

func (n *Node) own(pid int) bool {
	for _, p := range n.procs {
		if p.cmd.Process.Pid == pid {
			select {
			case <-p.done:
				return false
			default:
				return true
			}
		}
	}
	return false
}

// diagnose is what a failed test needs: pods, events and the tails of the parts' logs.
func (n *Node) diagnose() string {
	var b strings.Builder
	for _, args := range [][]string{{"get", "nodes,pods,daemonsets", "-A", "-o", "wide"}, {"get", "events", "-A", "--sort-by=.lastTimestamp"}} {
		out, err := n.KubectlErr(args...)
		fmt.Fprintf(&b, "$ kubectl %s (%v)\n%s\n", strings.Join(args, " "), err, out)
	}
	for _, p := range n.procs {
		fmt.Fprintf(&b, "--- tail of %s.log:\n%s\n", p.name, tail(p.log, 25))
	}
	return b.String()
}

// unmountUnder unmounts every mount at or below dir, deepest first (lazily: a busy mount must
// not keep the directory).
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, m := range slices.Compact(mounts) {
		_ = unix.Unmount(m, unix.MNT_DETACH)
	}
}

// removeLinksInto removes the symlinks in dir that point below target.
func removeLinksInto(dir, target string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if dst, err := os.Readlink(p); err == nil && strings.HasPrefix(dst, target+"/") {
			_ = os.Remove(p)
		}
	}
}

// removeCgroups removes name (and its children, deepest first) from every cgroup hierarchy.
func removeCgroups(name string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	if st, err := os.Stat("/sys/fs/cgroup/" + name); err == nil && st.IsDir() {
		roots = append(roots, "/sys/fs/cgroup/"+name) // cgroup v2 alone
	}
	for _, root := range roots {
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			for try := 0; try < 50; try++ {
				if err := unix.Rmdir(dirs[i]); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}

func newCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "netbootd-test-node-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return ca, key
}

// newServing is the API server's certificate: in-cluster clients verify it against the pods'
// ca.crt for the Service VIP and kubernetes.default.svc.
func newServing(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, ips, names []string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: names,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
}

func pemCert(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
