//go:build integration

package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/netns"
)

// The image `make image` built in Debian's containerd, as a node gets it: `ctr images import`
// takes both platforms under the name the chart runs, the container runs the stamped netbootd,
// and there is no shell in it.
func TestNodeImageImportsAndRuns(t *testing.T) {
	ref, _, ctr := importedImage(t)
	version := strings.TrimPrefix(ref, "ghcr.io/netbootd/netbootd:")
	out, err := ctr("images", "ls")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, ref+" ") || !strings.Contains(out, "linux/amd64,linux/arm64") {
		t.Fatalf("ctr images ls lacks %s for linux/amd64 and linux/arm64:\n%s", ref, out)
	}
	out, err = ctr("run", "--rm", ref, "netbootd-version-"+randomSuffix(), "netbootd", "version")
	if err != nil || !strings.HasPrefix(out, "netbootd "+version+" (commit ") {
		t.Fatalf("netbootd version in the container: %v\n%s\nwant netbootd %s", err, out, version)
	}
	out, err = ctr("run", "--rm", ref, "netbootd-shell-"+randomSuffix(), "/bin/sh", "-c", "true")
	if err == nil || !strings.Contains(out, "/bin/sh") {
		t.Fatalf("a shell ran in the image (want none): %v\n%s", err, out)
	}
}

// importedImage starts the test's own containerd (its socket, root and state in a temporary
// directory; no CRI), imports make image's archive (bin/image.tar, or $NETBOOTD_IMAGE) and
// returns the image's name, that containerd's socket and a ctr bound to it.
func importedImage(t *testing.T) (string, string, func(args ...string) (string, error)) {
	t.Helper()
	netns.RequireRoot(t)
	tarball := os.Getenv("NETBOOTD_IMAGE")
	if tarball == "" {
		tarball = "../bin/image.tar"
	}
	if _, err := os.Stat(tarball); err != nil {
		t.Fatalf("%v (run make image, or set NETBOOTD_IMAGE)", err)
	}
	for _, tool := range []string{"containerd", "ctr", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (scripts/deps.sh installs containerd and runc)", tool, err)
		}
	}
	version := strings.TrimSpace(nodeRun(t, "", "make", "-s", "-C", "..", "version"))
	ref := "ghcr.io/netbootd/netbootd:" + version

	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	conf := "version = 2\nroot = \"" + dir + "/root\"\nstate = \"" + dir + "/state\"\n" +
		"disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"" + sock + "\"\n" +
		"[ttrpc]\n  address = \"" + sock + ".ttrpc\"\n"
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	ctd.Stdout, ctd.Stderr = logf, logf
	if err := ctd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ctd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = ctd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(patience):
			_ = ctd.Process.Kill()
			<-done
		}
		// Snapshots are overlay mounts under root: none may outlive the test.
		_ = exec.Command("sh", "-c", "grep -o ' "+dir+"/[^ ]*' /proc/self/mounts | xargs -r -n1 umount -l").Run()
	})
	ctr := func(args ...string) (string, error) {
		out, err := exec.Command("ctr", append([]string{"-a", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	waitUntil(t, "containerd", patience, func() bool { _, err := ctr("version"); return err == nil })
	if out, err := ctr("images", "import", "--all-platforms", tarball); err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, out)
	}
	return ref, sock, ctr
}

func randomSuffix() string { return strconv.FormatInt(time.Now().UnixNano(), 36) }

func nodeRun(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}
