//go:build integration

package tests

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// threadsOf is the number of OS threads of process pid.
func threadsOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/PID/status")
	return 0
}

// A download may wait for each ACK in a blocking read on a thread of its own
// (tftp/sockblock.go), but only while a P is left for the netpoller: under a flood of spoofed
// read requests (never acknowledged, each holding its transfer until it times out or gives
// way) the transfers do not each take a thread (hundreds of them are waiting), and real
// lock-step clients (tftp-hpa, atftp without windowsize) still get their files intact.
func TestTFTPLockThreadsBoundedUnderFlood(t *testing.T) {
	// 63 spoofed addresses hold up to 4 unacknowledged transfers each: 252 wanted, 200 allowed,
	// so they churn (one gives way to each new one) without crowding out a real client, which
	// acknowledges within a round trip.
	const maxTransfers, maxUnconfirmed = 256, 200
	r := newRack(t)
	root := t.TempDir()
	data := make([]byte, 512<<10+5)
	_, _ = rand.Read(data)
	if err := os.WriteFile(filepath.Join(root, "kernel"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	d := startNetbootd(t, r.server, "sv0", "10.10.0.1", rackConfig+
		fmt.Sprintf("tftp: {root: %s, max_transfers: %d, max_unconfirmed: %d}\n", root, maxTransfers, maxUnconfirmed), "", goPath...)
	pid := d.cmd.Process.Pid
	before := threadsOf(t, pid)

	legit := r.client(t, "02:00:00:00:0b:01")
	legit.Run(t, "ip", "addr", "add", "10.10.0.50/24", "dev", "eth0")
	attacker := r.client(t, "02:00:00:00:0b:02")
	attacker.Run(t, "ip", "addr", "add", "10.10.0.60/24", "dev", "eth0")
	sp := newSpoofer(t, attacker)

	// The flood: 63 addresses nobody has, 16 ports each, every 200 ms.
	stopFlood := startSpoofedRRQFlood(t, sp, 63, tftpRRQ("kernel", "blksize", "512"))
	stopSampling := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var most int
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			most = max(most, threadsOf(t, pid))
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	stopSamplingOnce := sync.OnceFunc(func() { close(stopSampling); wg.Wait() })
	t.Cleanup(stopSamplingOnce)
	waitUntil(t, "spoofed requests to fill the unconfirmed transfers", 60*time.Second, func() bool {
		return d.metric("netbootd_tftp_admission_refused_total", `reason="unconfirmed_evicted"`) > 0
	})

	// Lock-step downloads, alternating the clients.
	dir := t.TempDir()
	var failed []string
	for i := range 6 {
		local := filepath.Join(dir, fmt.Sprint(i))
		args := []string{"tftp", "-m", "binary", "10.10.0.1", "-c", "get", "kernel", local}
		if i%2 == 1 {
			args = []string{"atftp", "--get", "-r", "kernel", "-l", local, "--option", "blksize 1468", "10.10.0.1"}
		}
		out, err := legit.Exec("timeout", append([]string{"120"}, args...)...)
		got, _ := os.ReadFile(local)
		if err != nil || sha256.Sum256(got) != sum {
			failed = append(failed, fmt.Sprintf("%s: %v, %d bytes: %s", args[0], err, len(got), out))
		}
	}
	active := d.metric("netbootd_tftp_active_transfers")
	_, sendErr := stopFlood()
	stopSamplingOnce()
	if sendErr != nil {
		t.Fatalf("spoofing: %v", sendErr)
	}
	for _, f := range failed {
		t.Error(f)
	}
	t.Logf("threads: %d before the flood, at most %d during it (max_transfers %d; %v transfers active at the end)", before, most, maxTransfers, active)
	// A few transfers may hold a thread each (one less than the Ps), and the runtime a few
	// more for the rest (the netpoller, threads handed a P while others block); a thread per
	// waiting transfer would be hundreds.
	if most > before+32 {
		t.Errorf("%d threads during the flood, %d before it: the waiting transfers hold threads (%v active at the end)", most, before, active)
	}
}
