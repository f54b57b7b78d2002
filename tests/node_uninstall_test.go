//go:build integration

package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	kube "github.com/netbootd/netbootd/tests/kube"
)

// What the Helm chart's pods do at their stop (--detach-with-daemonset), against a real API
// server: while their DaemonSet exists (a pod restart, a rolling upgrade) the XDP program stays
// pinned and keeps answering the reserved machine with no daemon running, and the next daemon
// adopts it; once the DaemonSet is deleted (helm uninstall) the stopping daemon detaches the
// program and removes its pins.
func TestNodeUninstallDetaches(t *testing.T) {
	r := newXDPRack(t)
	cl := kube.StartIn(t, r.server)
	kc := cl.Kubeconfig(t)
	const daemonSets = "/apis/apps/v1/namespaces/default/daemonsets"
	cl.Must(t, "POST", daemonSets, `{"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "r12-netbootd"},
		"spec": {"selector": {"matchLabels": {"app": "netbootd"}}, "template": {"metadata": {"labels": {"app": "netbootd"}},
		"spec": {"containers": [{"name": "netbootd", "image": "ghcr.io/netbootd/netbootd:0.1.0"}]}}}}`)
	cl.Must(t, "POST", "/apis/netbootd.io/v1alpha1/namespaces/default/machines", `{"apiVersion": "netbootd.io/v1alpha1", "kind": "Machine",
		"metadata": {"name": "kube1"}, "spec": {"hostname": "kube1", "interfaces": [{"mac": "02:00:00:00:00:3b", "ipv4": "10.10.0.33"}]}}`)

	pins := pinDir(t, r)
	args := []string{"--xdp", "generic", "--pin-dir", pins, "--kubeconfig", kc, "--kube-namespace", "default",
		"--detach-with-daemonset", "r12-netbootd"}
	c := r.client(t, "02:00:00:00:00:3b")
	xdpAttached := func() bool {
		out, err := r.server.Exec("ip", "-d", "link", "show", "dev", "sv0")
		if err != nil {
			t.Fatalf("ip link show sv0: %v %s", err, out)
		}
		return strings.Contains(out, "xdp")
	}
	pinned := func() bool {
		_, err := os.Stat(filepath.Join(pins, "sv0", "link"))
		return err == nil
	}
	answered := func(d *daemon) {
		t.Helper()
		waitUntil(t, "the Machine in the fast path", patience, func() bool { return d.metric("netbootd_xdp_reservations") >= 1 })
		if ip := udhcpcAnsweredByXDP(t, d, c, "the Machine")["ip"]; ip != "10.10.0.33" {
			t.Fatalf("Machine kube1 got %q, want 10.10.0.33", ip)
		}
	}

	// A restart: the DaemonSet is there, the program stays and answers with no daemon at all.
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", args...)
	answered(d)
	if err := d.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.logs(), "DaemonSet still there") || !pinned() || !xdpAttached() {
		t.Fatalf("stopped with its DaemonSet there: pinned %v, XDP attached %v, want both:\n%s", pinned(), xdpAttached(), d.logs())
	}
	if ip := udhcpcOnce(t, c)["ip"]; ip != "10.10.0.33" {
		t.Fatalf("between two daemons, Machine kube1 got %q, want 10.10.0.33 from the pinned program", ip)
	}

	// The next daemon adopts it; then helm uninstall: the DaemonSet goes first, the pod stops.
	d = startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig, "", args...)
	answered(d)
	cl.Must(t, "DELETE", daemonSets+"/r12-netbootd", "")
	if err := d.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.logs(), "DaemonSet uninstalled: XDP program detached, pins removed") || pinned() || xdpAttached() {
		t.Fatalf("stopped after its DaemonSet was deleted: pinned %v, XDP attached %v, want neither:\n%s", pinned(), xdpAttached(), d.logs())
	}
	if _, err := os.Stat(filepath.Join(pins, "sv0")); err == nil {
		t.Errorf("pin directory %s/sv0 left behind", pins)
	}
}
