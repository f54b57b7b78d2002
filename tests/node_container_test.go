//go:build integration

package tests

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// chartCaps are the capabilities the chart's DaemonSet adds after dropping all (helmCaps).
var chartCaps = []uintptr{unix.CAP_NET_ADMIN, unix.CAP_NET_RAW, unix.CAP_NET_BIND_SERVICE, unix.CAP_BPF, unix.CAP_PERFMON}

// containerdDefaultCaps is what `ctr run` grants unless dropped (containerd's default spec).
var containerdDefaultCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

// netbootd from make image's image, run the way the chart's pod runs it, by Debian's containerd
// and runc without kubelet: the host's network (here the test's server namespace), a read-only
// root filesystem, exactly the chart's five capabilities, the configuration and state mounted,
// the bpffs pin directory of the host. A reserved client gets its address from the container's
// XDP program; after SIGTERM the container exits cleanly and the pinned program keeps answering.
func TestNodeContainerServesFromImage(t *testing.T) {
	ref, sock, ctr := importedImage(t)
	r := newXDPRack(t)
	pins := pinDir(t, r)
	confDir, state := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "netbootd.yaml"), []byte(rackConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	id := "netbootd-" + randomSuffix()
	args := []string{"run", "--rm", "--read-only", "--with-ns", "network:/var/run/netns/" + r.server.Name(),
		"--mount", "type=bind,src=" + confDir + ",dst=/etc/netbootd,options=rbind:ro",
		"--mount", "type=bind,src=" + state + ",dst=/var/lib/netbootd,options=rbind:rw",
		"--mount", "type=bind,src=" + pins + ",dst=/sys/fs/bpf,options=rbind:rw"}
	for _, c := range containerdDefaultCaps {
		args = append(args, "--cap-drop", c)
	}
	for _, c := range []string{"CAP_NET_ADMIN", "CAP_BPF", "CAP_PERFMON"} {
		args = append(args, "--cap-add", c)
	}
	args = append(args, ref, id, "netbootd", "attach", "sv0", "--config=/etc/netbootd/netbootd.yaml",
		"--state-dir=/var/lib/netbootd", "--pin-dir=/sys/fs/bpf", "--xdp=native", "--http-listen=10.10.0.1:8080",
		"--mgmt-listen=127.0.0.1:9180", "--log-format=text")
	logs := &containerLog{}
	run := exec.Command("ctr", append([]string{"-a", sock}, args...)...)
	run.Stdout, run.Stderr = logs, logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	t.Cleanup(func() {
		_, _ = ctr("task", "kill", "-s", "SIGKILL", id)
		select {
		case <-exited:
		case <-time.After(patience):
		}
		if t.Failed() {
			t.Logf("container output:\n%s", logs.String())
		}
	})
	metric := func(name, match string) float64 {
		out, err := r.server.Exec("curl", "-sf", "http://127.0.0.1:9180/metrics")
		if err != nil {
			return -1
		}
		var sum float64
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, name) && strings.Contains(l, match) {
				var v float64
				if _, err := fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &v); err == nil {
					sum += v
				}
			}
		}
		return sum
	}
	waitUntil(t, "netbootd in the container ready", patience, func() bool {
		select {
		case err := <-exited:
			t.Fatalf("the container exited: %v\n%s", err, logs.String())
		default:
		}
		out, err := r.server.Exec("curl", "-sf", "http://127.0.0.1:9180/readyz")
		return err == nil && strings.Contains(out, "ready")
	})

	// Exactly the chart's capabilities, effective in the container's netbootd.
	pids, err := ctr("task", "ps", id)
	if err != nil {
		t.Fatalf("ctr task ps: %v\n%s", err, pids)
	}
	f := strings.Fields(strings.Split(strings.TrimSpace(pids), "\n")[1])
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatalf("ctr task ps: pid %q: %v", f[0], err)
	}
	checkCaps(t, pid)

	c := r.client(t, "02:00:00:00:00:0a")
	before := metric("netbootd_xdp_packets_total", `result="ack"`)
	if ip := udhcpcOnce(t, c)["ip"]; ip != "10.10.0.10" {
		t.Fatalf("reserved client got %q from the container, want 10.10.0.10", ip)
	}
	if after := metric("netbootd_xdp_packets_total", `result="ack"`); after <= before {
		t.Errorf("the reserved client was not answered by the container's XDP program (acks %v → %v)", before, after)
	}

	if out, err := ctr("task", "kill", "-s", "SIGTERM", id); err != nil {
		t.Fatalf("ctr task kill: %v\n%s", err, out)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("the container's exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(patience):
		t.Fatalf("the container did not exit %v after SIGTERM", patience)
	}
	if ip := udhcpcOnce(t, c)["ip"]; ip != "10.10.0.10" {
		t.Fatalf("with the container gone, reserved client got %q, want 10.10.0.10 from the pinned program", ip)
	}
}

// containerLog collects a container's output from two writers.
type containerLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *containerLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *containerLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
