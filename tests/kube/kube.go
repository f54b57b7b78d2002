// Package kube starts a real Kubernetes API server for tests: Debian's etcd and a
// kube-apiserver built from the Go module proxy (scripts/kube-tools/build.sh), both on
// loopback, with netbootd's CRDs (deploy/helm/netbootd/crds/) applied. It fails the test loudly, naming the
// fix, when either binary is missing; it never skips. Everything it starts is killed and its
// files removed at cleanup.
package kube

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
	"k8s.io/client-go/rest"

	"github.com/netbootd/netbootd/tests/netns"
)

// Version is the kube-apiserver scripts/kube-tools builds.
const Version = "v1.34.2"

// APIServerBinary is where the cached kube-apiserver is: $KUBE_APISERVER, else
// /var/cache/netbootd-test/kube-apiserver-VERSION (scripts/kube-tools/build.sh puts it there).
func APIServerBinary() string {
	if p := os.Getenv("KUBE_APISERVER"); p != "" {
		return p
	}
	dir := os.Getenv("KUBE_APISERVER_CACHE")
	if dir == "" {
		dir = "/var/cache/netbootd-test"
	}
	return filepath.Join(dir, "kube-apiserver-"+Version)
}

// HelmVersion is the helm scripts/kube-tools builds, for the chart's lint and render checks.
const HelmVersion = "v3.19.4"

// HelmBinary is where the cached helm is: $HELM, else
// /var/cache/netbootd-test/helm-HELMVERSION (scripts/kube-tools/build.sh puts it there).
func HelmBinary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("HELM")
	if p == "" {
		dir := os.Getenv("KUBE_APISERVER_CACHE")
		if dir == "" {
			dir = "/var/cache/netbootd-test"
		}
		p = filepath.Join(dir, "helm-"+HelmVersion)
	}
	if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("helm %s not found at %s: run scripts/kube-tools/build.sh (the binary is cached), or set HELM", HelmVersion, p)
	}
	return p
}

// Tool is the cached Kubernetes command name (kubelet, kubectl, kube-scheduler, ...) of Version
// that scripts/kube-tools/build.sh builds, failing the test, naming the fix, when it is missing.
func Tool(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv("KUBE_APISERVER_CACHE")
	if dir == "" {
		dir = "/var/cache/netbootd-test"
	}
	p := filepath.Join(dir, name+"-"+Version)
	if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("%s %s not found at %s: run scripts/kube-tools/build.sh (once; the binaries are cached)", name, Version, p)
	}
	return p
}

// Require fails the test unless etcd and kube-apiserver are here, saying how to get them.
func Require(t testing.TB) (etcd, apiserver string) {
	t.Helper()
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatalf("etcd not found: install Debian's etcd-server (scripts/deps.sh does): %v", err)
	}
	apiserver = APIServerBinary()
	if st, err := os.Stat(apiserver); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("kube-apiserver %s not found at %s: run scripts/kube-tools/build.sh (about 7 minutes once; "+
			"the binary is cached), or set KUBE_APISERVER", Version, apiserver)
	}
	return etcd, apiserver
}

// Cluster is an etcd and a kube-apiserver owned by one test.
type Cluster struct {
	// RestConfig reaches the API server as a cluster admin (bearer token, system:masters).
	RestConfig *rest.Config

	dir       string
	apiBin    string
	apiArgs   []string
	apiLog    string
	etcd      *exec.Cmd
	apiserver *exec.Cmd
	ns        *netns.NS // nil: the test's own network namespace
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Start starts etcd and kube-apiserver on loopback, waits for /readyz, applies the CRDs under
// deploy/helm/netbootd/crds/ and waits until they are served.
func Start(t testing.TB) *Cluster { return start(t, nil) }

// StartIn is Start inside the network namespace ns, where a netbootd under test can reach the
// API server on ns's loopback; the returned RestConfig dials into ns, so the test can too.
func StartIn(t testing.TB, ns *netns.NS) *Cluster { return start(t, ns) }

func start(t testing.TB, ns *netns.NS) *Cluster {
	t.Helper()
	etcdBin, apiBin := Require(t)
	// etcd fsyncs every write: on tmpfs 10,000 creates do not wait on the disk.
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "netbootd-kube-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{dir: dir, apiBin: apiBin, apiLog: filepath.Join(dir, "kube-apiserver.log"), ns: ns}
	c.dial = (&net.Dialer{}).DialContext
	if ns != nil {
		c.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := ns.Do(t, func() error {
				var err error
				conn, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		}
	}
	hc := &nethttp.Client{Transport: &nethttp.Transport{DialContext: c.dial}, Timeout: 5 * time.Second}
	t.Cleanup(c.cleanup)

	clientPort, peerPort, apiPort := FreePort(t), FreePort(t), FreePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	c.etcd = c.start(t, etcdBin, filepath.Join(dir, "etcd.log"),
		"--name", "test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test="+peerURL, "--quota-backend-bytes", strconv.Itoa(4<<30))
	waitFor(t, 30*time.Second, "etcd "+etcdURL+"/health", filepath.Join(dir, "etcd.log"), func() error {
		resp, err := hc.Get(etcdURL + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !bytes.Contains(b, []byte(`"true"`)) {
			return fmt.Errorf("etcd health: %s", b)
		}
		return nil
	})

	token := RandomHex(t, 16)
	tokens := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokens, token+`,admin,admin-uid,"system:masters"`+"\n")
	saKey := filepath.Join(dir, "sa.key")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, saKey, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	c.apiArgs = []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saKey, "--service-account-signing-key-file=" + saKey,
		"--token-auth-file=" + tokens,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--profiling=false",
	}
	c.RestConfig = &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(apiPort),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             1000, Burst: 2000,
		Dial: c.dial,
	}
	c.StartAPIServer(t)
	c.ApplyCRDs(t, crdDir(t))
	return c
}

// Kubeconfig writes a kubeconfig file for the cluster's admin, for a netbootd under test.
func (c *Cluster) Kubeconfig(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	writeFile(t, path, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: test, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %q}}]
contexts: [{name: test, context: {cluster: test, user: admin}}]
current-context: test
`, c.RestConfig.Host, c.RestConfig.BearerToken))
	return path
}

// StartAPIServer starts kube-apiserver (again, after StopAPIServer: same port, same etcd) and
// waits for /readyz.
func (c *Cluster) StartAPIServer(t testing.TB) {
	t.Helper()
	if c.apiserver != nil {
		t.Fatal("kube-apiserver already running")
	}
	c.apiserver = c.start(t, c.apiBin, c.apiLog, c.apiArgs...)
	waitFor(t, 120*time.Second, "kube-apiserver /readyz", c.apiLog, func() error {
		code, body, err := c.do(context.Background(), "GET", "/readyz", nil)
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("/readyz %d: %s", code, body)
		}
		return nil
	})
}

// StopAPIServer stops kube-apiserver (etcd keeps running).
func (c *Cluster) StopAPIServer(t testing.TB) {
	t.Helper()
	if c.apiserver == nil {
		return
	}
	stop(c.apiserver)
	c.apiserver = nil
}

// ApplyCRDs creates every CustomResourceDefinition in dir's *.yaml and waits until each is
// established and its resources are served.
func (c *Cluster) ApplyCRDs(t testing.TB, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s: %v", dir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd map[string]any
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		body, err := json.Marshal(crd)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		code, resp, err := c.do(context.Background(), "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body)
		if err != nil || code != 201 {
			t.Fatalf("apply CRD %s: %d %v: %s", f, code, err, resp)
		}
		spec, _ := crd["spec"].(map[string]any)
		names, _ := spec["names"].(map[string]any)
		versions, _ := spec["versions"].([]any)
		v0, _ := versions[0].(map[string]any)
		path := fmt.Sprintf("/apis/%s/%s/%s", spec["group"], v0["name"], names["plural"])
		waitFor(t, 30*time.Second, "CRD "+filepath.Base(f)+" served at "+path, c.apiLog, func() error {
			code, resp, err := c.do(context.Background(), "GET", path+"?limit=1", nil)
			if err != nil {
				return err
			}
			if code != 200 {
				return fmt.Errorf("%d: %s", code, resp)
			}
			return nil
		})
	}
}

// Create POSTs one object (JSON) to path as the admin, failing the test unless it is created.
func (c *Cluster) Create(t testing.TB, path, object string) {
	t.Helper()
	code, body, err := c.do(context.Background(), "POST", path, []byte(object))
	if err != nil || code != nethttp.StatusCreated {
		t.Fatalf("POST %s: %d %v %s", path, code, err, body)
	}
}

// Must sends one request (JSON; a PATCH is a merge patch) to path as the admin, failing the
// test unless the API server answers 2xx.
func (c *Cluster) Must(t testing.TB, method, path, body string) {
	t.Helper()
	code, out, err := c.do(context.Background(), method, path, []byte(body))
	if err != nil || code >= 300 {
		t.Fatalf("%s %s: %d %v %s", method, path, code, err, out)
	}
}

// Get GETs path as the admin into v (JSON), failing the test unless it succeeds.
func (c *Cluster) Get(t testing.TB, path string, v any) {
	t.Helper()
	code, body, err := c.do(context.Background(), "GET", path, nil)
	if err != nil || code != nethttp.StatusOK {
		t.Fatalf("GET %s: %d %v %s", path, code, err, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// do is one request to the API server as the admin.
func (c *Cluster) do(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	hc, err := rest.HTTPClientFor(c.RestConfig)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := nethttp.NewRequestWithContext(ctx, method, c.RestConfig.Host+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if method == nethttp.MethodPatch {
		req.Header.Set("Content-Type", "application/merge-patch+json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c *Cluster) start(t testing.TB, bin, logPath string, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	if c.ns != nil {
		cmd = exec.Command("ip", append([]string{"netns", "exec", c.ns.Name(), bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if c.ns == nil {
		// Not in a namespace: Pdeathsig follows the forking thread, and namespace work ends
		// threads; there the namespace's own cleanup kills what runs in it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", bin, err)
	}
	logf.Close()
	return cmd
}

func (c *Cluster) cleanup() {
	if c.apiserver != nil {
		stop(c.apiserver)
	}
	if c.etcd != nil {
		stop(c.etcd)
	}
	os.RemoveAll(c.dir)
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func waitFor(t testing.TB, timeout time.Duration, what, logPath string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s: %v\n--- tail of %s:\n%s", what, timeout, err, logPath, tail(logPath, 40))
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// FreePort is a TCP port free on 127.0.0.1 now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RandomHex is n random bytes in hex (tokens, names).
func RandomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// crdDir is the chart's crds/ folder: the CRDs controller-gen writes.
func crdDir(t testing.TB) string {
	return filepath.Join(repoRoot(t), "deploy", "helm", "netbootd", "crds")
}

// repoRoot is the directory of the go.mod above the test's working directory (its package's).
func repoRoot(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("cannot locate the repository: no go.mod above the working directory")
		}
		dir = parent
	}
}
