//go:build integration

package netns

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// A namespace whose creating test process was killed before its cleanups (go test's -timeout
// panic, SIGKILL) is deleted by the next sweep; one whose creator still runs is kept.
func TestOrphanNamespacesReclaimed(t *testing.T) {
	RequireRoot(t)
	creator := exec.Command("sleep", "60")
	if err := creator.Start(); err != nil {
		t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())
	orphan, live := "nbdtest-orphan-"+self, "nbdtest-live-"+self
	for name, pid := range map[string]int{orphan: creator.Process.Pid, live: os.Getpid()} {
		if err := claimFor(name, pid); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() { deleteNamespace(name) })
	}
	_ = creator.Process.Kill()
	_ = creator.Wait()

	sweepOrphans()

	if exists(orphan) {
		t.Errorf("namespace %s of a dead creator survived the sweep", orphan)
	}
	if _, err := os.Stat(filepath.Join(ownersDir, orphan)); !os.IsNotExist(err) {
		t.Errorf("owner record of %s: %v, want it removed", orphan, err)
	}
	if !exists(live) {
		t.Errorf("namespace %s of a live creator was deleted", live)
	}
}
