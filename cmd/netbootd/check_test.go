package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets a test run this binary as netbootd itself (NETBOOTD_TEST_MAIN=1): the real
// main, its exit status and its output.
func TestMain(m *testing.M) {
	if os.Getenv("NETBOOTD_TEST_MAIN") == "1" {
		os.Args = append([]string{"netbootd"}, os.Args[1:]...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// netbootd runs the command line args and returns its stdout, stderr and exit code.
func netbootd(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "NETBOOTD_TEST_MAIN=1")
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// `netbootd check` prints every problem of a file, each as FILE:LINE: FIELD: MESSAGE with a
// "did you mean" for a misspelt key, and exits non-zero; a good file prints ok and exits 0.
func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(`interface: {mode: authoritative}
subnets:
  - cidr: 10.0.0.0/24
    pools: ["10.0.0.100-10.0.0.255"]
    lease_tme: 1h
    options: {routr: 10.0.0.1}
reservations:
  - {mac: "ff:ff:ff:ff:ff:ff", ip: 10.0.0.5, hostnme: node5}
profiles:
  - {name: wipe, kernal: vmlinuz}
groups:
  - {name: wipe, profile: wipe, selectr: {hostname: node5}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := netbootd(t, "check", "--config", bad)
	if code == 0 {
		t.Errorf("check of a bad file exited 0; stdout %q", stdout)
	}
	for _, want := range []string{
		bad + ": 8 problems:",
		bad + `:5: subnets[0].lease_tme: unknown field; did you mean "lease_time"?`,
		bad + `:6: subnets[0].options.routr: unknown field; did you mean "router"?`,
		bad + `:8: reservations[0].hostnme: unknown field; did you mean "hostname"?`,
		bad + `:10: profiles[0].kernal: unknown field; did you mean "kernel"?`,
		bad + `:12: groups[0].selectr: unknown field; did you mean "selector"?`,
		bad + `:4: subnets[0].pools[0]: 10.0.0.100-10.0.0.255 contains the broadcast address 10.0.0.255`,
		bad + `:8: reservations[0].mac: ff:ff:ff:ff:ff:ff is the broadcast address, no machine's`,
		bad + `:10: profiles[0]: set one of kernel (with initrds and args), script or menu`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %s\nstderr:\n%s", want, stderr)
		}
	}

	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(`subnets:
  - cidr: 10.0.0.0/24
    pools: ["10.0.0.100-10.0.0.200"]
reservations:
  - {mac: "02:00:00:00:00:05", ip: 10.0.0.5, hostname: node5}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = netbootd(t, "check", "--config", good)
	if code != 0 || !strings.Contains(stdout, "ok: mode authoritative, 1 subnets, 1 reservations") {
		t.Errorf("check of a good file: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
