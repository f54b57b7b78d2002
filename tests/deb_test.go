//go:build integration

package tests

import (
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netbootd/netbootd/tests/netns"
)

// The Debian package `make deb` built (bin/netbootd_*_amd64.deb, or $NETBOOTD_DEB), installed
// the way users do (`apt-get install ./netbootd_*.deb`) into a throwaway copy of this machine:
// an overlay over / in a private mount namespace, so apt, dpkg and the maintainer scripts run
// for real and the host's files (its dpkg database, /etc/passwd) stay untouched. Then: the unit
// passes `systemd-analyze verify` (and a unit naming a binary that is not there does not), the
// installed binary accepts the installed configuration, remove keeps configuration and leases,
// and purge removes them.
func TestDebInstallRemovePurge(t *testing.T) {
	netns.RequireRoot(t)
	deb := os.Getenv("NETBOOTD_DEB")
	if deb == "" {
		m, _ := filepath.Glob("../bin/netbootd_*_amd64.deb")
		if len(m) != 1 {
			t.Fatalf("want one ../bin/netbootd_*_amd64.deb (run make deb, or set NETBOOTD_DEB), found %q", m)
		}
		deb = m[0]
	}
	for _, tool := range []string{"dpkg-deb", "unshare", "nsenter", "systemd-analyze"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v (scripts/deps.sh installs it)", tool, err)
		}
	}

	// The package's metadata and exact contents.
	if out := debRun(t, "dpkg-deb", "-f", deb, "Package", "Depends", "Architecture"); out != "Package: netbootd\nDepends: ipxe\nArchitecture: amd64\n" {
		t.Errorf("control fields:\n%s", out)
	}
	var files []string
	for _, line := range strings.Split(strings.TrimSpace(debRun(t, "dpkg-deb", "--contents", deb)), "\n") {
		f := strings.Fields(line)
		files = append(files, f[0]+" "+f[1]+" "+f[len(f)-1])
	}
	want := []string{
		"drwxr-xr-x root/root ./etc/", "drwxr-xr-x root/root ./etc/netbootd/",
		"-rw-r--r-- root/root ./etc/netbootd/netbootd.yaml",
		"drwxr-xr-x root/root ./usr/", "drwxr-xr-x root/root ./usr/bin/", "-rwxr-xr-x root/root ./usr/bin/netbootd",
		"drwxr-xr-x root/root ./usr/lib/", "drwxr-xr-x root/root ./usr/lib/systemd/", "drwxr-xr-x root/root ./usr/lib/systemd/system/",
		"-rw-r--r-- root/root ./usr/lib/systemd/system/netbootd@.service",
		"drwxr-xr-x root/root ./usr/lib/sysusers.d/", "-rw-r--r-- root/root ./usr/lib/sysusers.d/netbootd.conf",
		"drwxr-xr-x root/root ./var/", "drwxr-xr-x root/root ./var/lib/", "drwxr-xr-x root/root ./var/lib/netbootd/",
	}
	if !slices.Equal(files, want) {
		t.Errorf("contents:\n%s\nwant:\n%s", strings.Join(files, "\n"), strings.Join(want, "\n"))
	}
	if conf := debRun(t, "dpkg-deb", "-I", deb, "conffiles"); strings.TrimSpace(conf) != "/etc/netbootd/netbootd.yaml" {
		t.Errorf("conffiles: %q", conf)
	}

	hostPasswd := debFileHash(t, "/etc/passwd")
	hostStatus := debFileHash(t, "/var/lib/dpkg/status")
	root := debRoot(t)
	data, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	in := func(script string) (string, error) { return root.run(t, script) }
	mustIn := func(script string) string {
		t.Helper()
		out, err := in(script)
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return out
	}
	if err := os.WriteFile(filepath.Join(root.dir, "tmp", "netbootd.deb"), data, 0o644); err != nil {
		t.Fatal(err)
	}

	mustIn("cd /tmp && DEBIAN_FRONTEND=noninteractive apt-get install -y ./netbootd.deb")
	if out := mustIn("dpkg-query -W -f='${Status}' netbootd"); out != "install ok installed" {
		t.Fatalf("dpkg status: %q", out)
	}
	if out := mustIn("getent passwd netbootd"); !strings.Contains(out, ":/var/lib/netbootd:/usr/sbin/nologin") {
		t.Errorf("system user: %q", out)
	}
	if out := mustIn("netbootd version"); !strings.HasPrefix(out, "netbootd ") || strings.Contains(out, "unknown") {
		t.Errorf("netbootd version: %q, want the stamped version, commit and date", out)
	}
	if out := mustIn("netbootd check --config /etc/netbootd/netbootd.yaml"); !strings.HasPrefix(out, "ok:") {
		t.Errorf("netbootd check of the installed configuration: %q", out)
	}
	// No output at all: an unknown key or a missing binary would be reported.
	if out := mustIn("systemd-analyze verify /usr/lib/systemd/system/netbootd@eth0.service 2>&1"); out != "" {
		t.Errorf("systemd-analyze verify netbootd@eth0.service:\n%s", out)
	}
	// The check can fail: the repository's unit names /usr/local/bin/netbootd (make install),
	// which this root does not have.
	mustIn("sed 's|/usr/bin/netbootd|/usr/local/bin/netbootd|' /usr/lib/systemd/system/netbootd@.service > /tmp/netbootd@.service")
	if out, err := in("systemd-analyze verify /tmp/netbootd@eth0.service 2>&1"); err == nil || !strings.Contains(out, "/usr/local/bin/netbootd") {
		t.Errorf("systemd-analyze verify of a unit without its binary: err %v, output %q", err, out)
	}

	// An operator's configuration and leases: remove keeps them, purge removes them.
	mustIn("echo 'interface: {mode: reservation}' > /etc/netbootd/eth0.yaml && mkdir -p /var/lib/netbootd/eth0 && echo lease > /var/lib/netbootd/eth0/leases.db")
	mustIn("DEBIAN_FRONTEND=noninteractive apt-get remove -y netbootd")
	if out := mustIn("ls /etc/netbootd /var/lib/netbootd/eth0; test ! -e /usr/bin/netbootd && test ! -e /usr/lib/systemd/system/netbootd@.service && echo gone"); !strings.Contains(out, "eth0.yaml") || !strings.Contains(out, "netbootd.yaml") || !strings.Contains(out, "leases.db") || !strings.HasSuffix(out, "gone") {
		t.Errorf("after remove: %q, want the configuration and leases kept, the binary and unit gone", out)
	}
	mustIn("DEBIAN_FRONTEND=noninteractive apt-get purge -y netbootd")
	if out, _ := in("ls -d /etc/netbootd /var/lib/netbootd /usr/bin/netbootd /usr/lib/sysusers.d/netbootd.conf 2>/dev/null; dpkg-query -W netbootd 2>&1"); strings.Contains(out, "/") || !strings.Contains(out, "no packages found") {
		t.Errorf("after purge: %q, want nothing left", out)
	}

	if debFileHash(t, "/etc/passwd") != hostPasswd || debFileHash(t, "/var/lib/dpkg/status") != hostStatus {
		t.Errorf("the host's /etc/passwd or dpkg status changed: the install escaped its root")
	}
}

// debRootNS is a throwaway copy of / (an overlay whose upper layer is a tmpfs) in a mount
// namespace of its own, held by a sleeping process; its end unmounts everything.
type debRootNS struct {
	pid int
	dir string // the merged root, as the namespace sees it (and the host does not)
}

func debRoot(t *testing.T) *debRootNS {
	t.Helper()
	base := t.TempDir()
	holder := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "infinity")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = holder.Process.Signal(syscall.SIGKILL)
		_ = holder.Wait()
	})
	r := &debRootNS{pid: holder.Process.Pid, dir: filepath.Join(base, "m")}
	// The namespace exists once unshare has exec'd sleep.
	waitUntil(t, "unshare's mount namespace", 30*time.Second, func() bool {
		self, err1 := os.Readlink("/proc/self/ns/mnt")
		its, err2 := os.Readlink("/proc/" + strconv.Itoa(r.pid) + "/ns/mnt")
		exe, _ := os.Readlink("/proc/" + strconv.Itoa(r.pid) + "/exe")
		return err1 == nil && err2 == nil && self != its && strings.HasSuffix(exe, "/sleep")
	})
	setup := "set -e; mount -t tmpfs tmpfs " + base + "; cd " + base + "; mkdir u w m;" +
		" mount -t overlay overlay -o lowerdir=/,upperdir=u,workdir=w m;" +
		" mount --bind /proc m/proc; mount --bind /dev m/dev; mount -t tmpfs tmpfs m/tmp; mount -t tmpfs tmpfs m/run"
	if out, err := exec.Command("nsenter", "-t", strconv.Itoa(r.pid), "-m", "sh", "-c", setup).CombinedOutput(); err != nil {
		t.Fatalf("overlay root: %v\n%s", err, out)
	}
	// The test writes the package into the namespace's /tmp through /proc/PID/root.
	r.dir = filepath.Join("/proc", strconv.Itoa(r.pid), "root", base, "m")
	return r
}

// run runs a shell script chrooted into the copy and returns its trimmed standard output (and
// standard error, on failure).
func (r *debRootNS) run(t *testing.T, script string) (string, error) {
	t.Helper()
	merged := strings.TrimPrefix(r.dir, filepath.Join("/proc", strconv.Itoa(r.pid), "root"))
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(r.pid), "-m", "chroot", merged, "/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := strings.TrimSpace(stdout.String())
	if err != nil {
		out += "\n" + stderr.String()
	}
	return out, err
}

func debRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return string(out)
}

func debFileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
