package qemu

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The archive must read back with GNU cpio, an implementation independent of ours and of the
// kernel's (which the integration tests exercise).
func TestCPIORoundTrip(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Fatalf("this test needs cpio: %v (run scripts/deps.sh)", err)
	}
	var buf bytes.Buffer
	c := newCPIOWriter(&buf)
	c.Dir("bin", 0o755)
	c.File("bin/busybox", 0o755, []byte("odd length!"))
	c.Symlink("bin/sh", "busybox")
	c.CharDev("dev/console", 0o600, 5, 1)
	c.File("init", 0o755, nil)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive is %d bytes, want a multiple of 4", buf.Len())
	}
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	for _, want := range []string{
		"drwxr-xr-x .* bin\n",
		"-rwxr-xr-x .* 11 .* bin/busybox\n",
		"lrwxrwxrwx .* bin/sh -> busybox\n",
		"crw------- .* 5, +1 .* dev/console\n",
		"-rwxr-xr-x .* 0 .* init\n",
	} {
		if !regexp.MustCompile(want).MatchString(string(out)) {
			t.Errorf("cpio listing lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(string(out), "\n"); n != 5 {
		t.Errorf("cpio listed %d entries, want 5:\n%s", n, out)
	}
}

func TestModName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/drivers/net/virtio_net.ko":     "virtio_net",
		"kernel/drivers/net/virtio_net.ko.xz":  "virtio_net",
		"kernel/drivers/net/virtio_net.ko.zst": "virtio_net",
		"virtio-net":                           "virtio_net",
	} {
		if got := modName(in); got != want {
			t.Errorf("modName(%q) = %q, want %q", in, got, want)
		}
	}
}
