//go:build integration

package tests

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pintftp "github.com/pin/tftp/v3"

	"github.com/netbootd/netbootd/tests/netns"
)

// delayLine joins two new namespaces through tests/delayline (two TUN devices, a user-space
// queue: this kernel has no netem): server 10.77.0.1 on dla, client 10.77.0.2 on dlb.
func delayLine(t *testing.T, delay string, loss string) (server, client *netns.NS) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "delayline")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/netbootd/netbootd/tests/delayline").CombinedOutput(); err != nil {
		t.Fatalf("build delayline: %v\n%s", err, out)
	}
	server, client = netns.New(t, "nbd"), netns.New(t, "nbd")
	cmd := exec.Command(bin, "-a", server.Name(), "-ia", "dla", "-addr-a", "10.77.0.1/24",
		"-b", client.Name(), "-ib", "dlb", "-addr-b", "10.77.0.2/24", "-delay", delay, "-loss", loss, "-seed", "7", "-t", "5m")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) // before the namespaces go
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "delayline ready" {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("delayline exited before it was ready")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("delayline not ready after 15s")
	}
	return server, client
}

// Under RTT and loss, real clients still get every file intact, and fast: the server
// retransmits from the first unacknowledged block on an RTT-adapted timer.
func TestTFTPUnderDelayAndLoss(t *testing.T) {
	for _, tc := range []struct{ delay, loss string }{{"500us", "0.03"}, {"2500us", "0.01"}} {
		t.Run("delay "+tc.delay+" loss "+tc.loss, func(t *testing.T) {
			server, client := delayLine(t, tc.delay, tc.loss)
			root := t.TempDir()
			data := make([]byte, 1<<20+333)
			_, _ = rand.Read(data)
			if err := os.WriteFile(filepath.Join(root, "loader.efi"), data, 0o644); err != nil {
				t.Fatal(err)
			}
			want := sha256.Sum256(data)
			d := startNetbootd(t, server, "dla", "10.77.0.1", "interface: {mode: proxy}\ntftp: {root: "+root+"}\n", "", goPath...)
			out := t.TempDir()
			for name, args := range map[string][]string{
				"atftp windowsize 16": {"atftp", "--get", "-r", "loader.efi", "-l", filepath.Join(out, "a"), "--option", "blksize 1468", "--option", "windowsize 16", "10.77.0.1"},
				"tftp-hpa":            {"tftp", "-m", "binary", "10.77.0.1", "-c", "get", "loader.efi", filepath.Join(out, "h")},
			} {
				start := time.Now()
				o, err := client.Exec("timeout", append([]string{"120"}, args...)...)
				// atftp aborts when it sees a second OACK (tftp_file.c: "oacks > 1"), which
				// is what any server sends when the client's ACK 0 is lost; that is atftp's
				// limit, not the server's, so such a run is retried (at most twice).
				for try := 0; err != nil && try < 2 && strings.Contains(o, "unexpected OACK"); try++ {
					t.Logf("%s: ACK 0 lost, atftp aborted on the retransmitted OACK; retrying", name)
					start = time.Now()
					o, err = client.Exec("timeout", append([]string{"120"}, args...)...)
				}
				if err != nil {
					t.Errorf("%s: %v\n%s", name, err, o)
					continue
				}
				local := filepath.Join(out, "h")
				if strings.HasPrefix(name, "atftp") {
					local = filepath.Join(out, "a")
				}
				got, _ := os.ReadFile(local)
				if sha256.Sum256(got) != want {
					t.Errorf("%s: %d bytes, checksum differs", name, len(got))
				}
				t.Logf("%s: 1 MiB in %v", name, time.Since(start).Round(time.Millisecond))
			}
			// pin/tftp, an independent Go client, from inside the client namespace.
			start := time.Now()
			var buf bytes.Buffer
			if err := client.Do(t, func() error {
				c, err := pintftp.NewClient("10.77.0.1:69")
				if err != nil {
					return err
				}
				c.SetBlockSize(1468)
				c.SetTimeout(300 * time.Millisecond) // pin waits out its timeout for every lost block
				c.SetRetries(20)
				wt, err := c.Receive("loader.efi", "octet")
				if err != nil {
					return err
				}
				_, err = wt.WriteTo(&buf)
				return err
			}); err != nil {
				t.Errorf("pin/tftp: %v", err)
			} else if sha256.Sum256(buf.Bytes()) != want {
				t.Errorf("pin/tftp: %d bytes, checksum differs", buf.Len())
			}
			t.Logf("pin/tftp: 1 MiB in %v", time.Since(start).Round(time.Millisecond))
			if n := d.metric("netbootd_tftp_retransmitted_blocks_total"); n == 0 {
				t.Errorf("no retransmissions counted under %s loss", tc.loss)
			}
		})
	}
}

// Windows go out as batches (one sendmmsg per up to 64 blocks): under loss every window size,
// lock-step, one batch and a window of two batches, delivers every file intact, including one
// that is an exact multiple of the block size (its last DATA is a bare header).
func TestTFTPPerfBatchedWindowsUnderLoss(t *testing.T) {
	server, client := delayLine(t, "200us", "0.03")
	root := t.TempDir()
	files := map[string][]byte{"odd.bin": make([]byte, 700<<10+77), "even.bin": make([]byte, 1468*400)}
	for name, data := range files {
		_, _ = rand.Read(data)
		if err := os.WriteFile(filepath.Join(root, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := startNetbootd(t, server, "dla", "10.77.0.1", "interface: {mode: proxy}\ntftp: {root: "+root+", max_window: 128}\n", "", goPath...)
	out := t.TempDir()
	for _, window := range []int{0, 4, 16, 64, 128} {
		for name, data := range files {
			local := filepath.Join(out, fmt.Sprintf("%s.%d", name, window))
			args := []string{"120", "atftp", "--get", "-r", name, "-l", local, "--option", "blksize 1468"}
			if window > 0 {
				args = append(args, "--option", fmt.Sprintf("windowsize %d", window))
			}
			args = append(args, "10.77.0.1")
			o, err := client.Exec("timeout", args...)
			// atftp aborts on a retransmitted OACK (see TestTFTPUnderDelayAndLoss): retry that.
			for try := 0; err != nil && try < 3 && strings.Contains(o, "unexpected OACK"); try++ {
				o, err = client.Exec("timeout", args...)
			}
			if err != nil {
				t.Errorf("%s windowsize %d: %v\n%s", name, window, err, o)
				continue
			}
			got, _ := os.ReadFile(local)
			if !bytes.Equal(got, data) {
				t.Errorf("%s windowsize %d: %d bytes of %d, content differs", name, window, len(got), len(data))
			}
		}
	}
	if n := d.metric("netbootd_tftp_retransmitted_blocks_total"); n == 0 {
		t.Error("no retransmissions counted under 3% loss")
	}
}
