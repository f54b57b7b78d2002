//go:build integration

package tests

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/netbootd/netbootd/control/machines"
	"github.com/netbootd/netbootd/control/syslog"
	"github.com/netbootd/netbootd/tests/netns"
	"github.com/netbootd/netbootd/tests/testrun"
)

// busyboxRemote runs busybox syslogd forwarding to server (-R) and logs one message through it
// with busybox logger, which itself can only write to /dev/log. /dev is a fresh tmpfs in a
// private mount namespace: syslogd's /dev/log never touches the host's.
const busyboxRemote = `set -e
mount -t tmpfs tmpfs "$1"
touch "$1/null"
mount --bind /dev/null "$1/null"
mount --rbind "$1" /dev
busybox syslogd -n -R "$2" &
pid=$!
i=0
while [ ! -S /dev/log ]; do i=$((i+1)); [ $i -lt 200 ]; sleep 0.05; done
busybox logger -t bbtest -p daemon.err "$3"
sleep 0.5
kill $pid
`

// Real senders, across a veth, reach the machine's timeline: util-linux logger in RFC 3164
// and RFC 5424, and busybox (logger through syslogd -R, as an initramfs would), whose message
// also matches the booted pattern.
func TestSyslogFromRealClients(t *testing.T) {
	for _, tool := range []string{"logger", "busybox", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("this test needs %s: %v (logger and unshare: util-linux/bsdutils; busybox: busybox-static; run scripts/deps.sh)", tool, err)
		}
	}
	if out, _ := exec.Command("logger", "--help").CombinedOutput(); !strings.Contains(string(out), "--rfc5424") {
		t.Fatalf("logger is not util-linux's (no --rfc5424):\n%s", out)
	}

	srv, cl := netns.New(t, "nbsl"), netns.New(t, "nbsl")
	netns.Veth(t, srv, "sv0", "10.10.0.1/24", cl, "eth0", "10.10.0.2/24")
	mac := net.HardwareAddr{2, 0, 0, 0, 0x51, 1}
	store, err := machines.New(machines.Config{})
	if err != nil {
		t.Fatal(err)
	}
	store.DHCP(mac, netip.MustParseAddr("10.10.0.2"), true, machines.Event{Source: "dhcp", Detail: "ack 10.10.0.2"})

	reg := prometheus.NewRegistry()
	var r *syslog.Receiver
	// The socket is made inside the server namespace and stays there; Run may read it from any thread.
	if err := srv.Do(t, func() error {
		var err error
		r, err = syslog.New(syslog.Config{Listen: "10.10.0.1:514", BootedPattern: `bbtest: boot finished`, Registerer: reg, Machines: store})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	testrun.Run(t, r.Run)

	nonce := make([]byte, 4)
	_, _ = rand.Read(nonce)
	id := hex.EncodeToString(nonce)
	cl.Run(t, "logger", "-n", "10.10.0.1", "-P", "514", "--udp", "--rfc3164", "-t", "kernel", "-p", "kern.warning", "hello 3164 "+id)
	cl.Run(t, "logger", "-n", "10.10.0.1", "-P", "514", "--udp", "--rfc5424", "-t", "app5424", "-p", "user.info", "hello 5424 "+id)
	cl.Run(t, "unshare", "--mount", "--propagation", "private", "sh", "-c", busyboxRemote, "sh", t.TempDir(), "10.10.0.1:514", "boot finished "+id)

	want := []machines.Event{
		{Source: "syslog", Detail: "warning kernel: hello 3164 " + id},
		{Source: "syslog", Detail: "info app5424: hello 5424 " + id},
		{Source: "syslog", Detail: "err bbtest: boot finished " + id, Phase: machines.PhaseBooted},
	}
	var got []machines.Event
	var m machines.Machine
	for deadline := time.Now().Add(patience); ; time.Sleep(50 * time.Millisecond) {
		m, _ = store.Get(mac)
		got = got[:0]
		for _, ev := range m.Events {
			if ev.Source == "syslog" {
				ev.Time = time.Time{}
				got = append(got, ev)
			}
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("timeline of %s (-want +got):\n%s", mac, diff)
	}
	if m.Phase != machines.PhaseBooted || m.Booted.IsZero() {
		t.Errorf("machine phase %q, booted %v: the busybox message did not close the boot", m.Phase, m.Booted)
	}
	if n := syslogCounter(t, reg, "netbootd_syslog_messages_total", "recorded"); n != 3 {
		t.Errorf("recorded %v messages, want 3", n)
	}
}

// syslogCounter reads one sample of a counter family from reg, by its only label's value.
func syslogCounter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if lp := m.GetLabel(); len(lp) == 1 && lp[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%q}", name, label)
	return 0
}
