package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// ownersDir records which test process created each namespace: one file per namespace, holding
// the creator's PID and its start time (so a reused PID is not taken for the creator).
const ownersDir = "/run/netbootd-test-netns"

// reclaimOnce limits the sweep to the first New of a test process: orphans come from processes
// that died before this one started.
var reclaimOnce sync.Once

// reclaimOrphans deletes the namespaces whose creating test process is gone without having run
// its cleanups. Namespaces of live test processes (another package, a parallel run) are kept.
func reclaimOrphans() { reclaimOnce.Do(sweepOrphans) }

func sweepOrphans() {
	entries, err := os.ReadDir(ownersDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rec, err := os.ReadFile(filepath.Join(ownersDir, e.Name()))
		if err != nil || alive(string(rec)) {
			continue
		}
		fmt.Fprintf(os.Stderr, "netns: deleting namespace %s left by a test process that died (%s)\n", e.Name(), strings.TrimSpace(string(rec)))
		deleteNamespace(e.Name())
	}
}

// claim records this process as the owner of namespace name.
func claim(name string) error { return claimFor(name, os.Getpid()) }

func claimFor(name string, pid int) error {
	if err := os.MkdirAll(ownersDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(ownersDir, name), []byte(identity(pid)+"\n"), 0o644)
}

// release forgets the owner of namespace name.
func release(name string) {
	if err := os.Remove(filepath.Join(ownersDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "netns: %v\n", err)
	}
}

// alive reports whether the process an owner record names still runs.
func alive(rec string) bool {
	pid, _, _ := strings.Cut(strings.TrimSpace(rec), " ")
	n, err := strconv.Atoi(pid)
	return err == nil && identity(n) == strings.TrimSpace(rec)
}

// identity is "PID STARTTIME" (field 22 of /proc/PID/stat, in clock ticks since boot), or "PID"
// alone when the process does not exist.
func identity(pid int) string {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return strconv.Itoa(pid)
	}
	// The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 20 {
		return strconv.Itoa(pid)
	}
	return strconv.Itoa(pid) + " " + fields[19]
}

// exists reports whether `ip netns` knows namespace name.
func exists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}
