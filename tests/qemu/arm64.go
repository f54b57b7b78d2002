package qemu

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ARM64Payload is the test payload for arm64 machines, built from what scripts/arm64-fetch.sh
// put in dir (the unpacked arm64 kernel package under kernel/ and a static arm64 busybox): the
// same /init and udhcpc script as the amd64 payload, an arm64 kernel and its virtio NIC
// modules. It is cached in dir, keyed by what goes into it.
func ARM64Payload(t testing.TB, dir string) Payload {
	t.Helper()
	p, err := arm64Payload(dir)
	if err != nil {
		t.Fatalf("arm64 payload from %s: %v (run scripts/arm64-fetch.sh)", dir, err)
	}
	return p
}

func arm64Payload(dir string) (Payload, error) {
	bb := filepath.Join(dir, "busybox")
	data, err := os.ReadFile(bb)
	if err != nil {
		return Payload{}, err
	}
	if !isStatic(bb) {
		return Payload{}, fmt.Errorf("%s is not a static executable", bb)
	}
	kernels, _ := filepath.Glob(filepath.Join(dir, "kernel", "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return Payload{}, fmt.Errorf("expected one kernel/boot/vmlinuz-*, found %v", kernels)
	}
	h := sha256.New()
	for _, s := range []string{payloadFormat, initScript, udhcpcScript, strings.Join(payloadModules, ","), string(data), kernels[0]} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	out := filepath.Join(dir, "payload-"+hex.EncodeToString(h.Sum(nil))[:12])
	p := Payload{Kernel: filepath.Join(out, "vmlinuz"), Initrd: filepath.Join(out, "initrd.gz")}
	if _, err := os.Stat(p.Initrd); err == nil {
		return p, nil
	}
	tmp, err := os.MkdirTemp(dir, ".payload-")
	if err != nil {
		return Payload{}, err
	}
	defer os.RemoveAll(tmp)
	if err := assemble(filepath.Join(dir, "kernel"), bb, tmp); err != nil {
		return Payload{}, err
	}
	// Whoever renames first wins; the loser's copy is the same.
	if err := os.Rename(tmp, out); err != nil {
		if _, statErr := os.Stat(p.Initrd); statErr != nil {
			return Payload{}, fmt.Errorf("publish payload: %w", err)
		}
	}
	return p, nil
}
