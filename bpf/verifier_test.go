//go:build integration

package bpf

import (
	"regexp"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
)

// verifierBudget is the most instructions the verifier may process for netbootd_xdp: the
// kernel refuses a program at 1,000,000; the program needs ~41,000 since the option scan, the
// option 55 check and the reply are global functions (943,238 before), ~60,000 with DHCPv6
// (answer6 and send6, global too), and this keeps a
// regression that multiplies paths again from going unseen.
const verifierBudget = 200_000

// TestVerifierBudget loads the program with the verifier's statistics and logs how many
// instructions it processed (`go test -tags integration -run TestVerifierBudget -v ./bpf/`).
func TestVerifierBudget(t *testing.T) {
	var objs netbootdObjects
	opts := &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}}
	if err := loadNetbootdObjects(&objs, opts); err != nil {
		t.Fatalf("load (needs root and bpf): %v", explainVerifier(err))
	}
	defer objs.Close()
	m := regexp.MustCompile(`processed (\d+) insns`).FindStringSubmatch(objs.NetbootdXdp.VerifierLog)
	if m == nil {
		t.Fatalf("no instruction count in the verifier log:\n%s", objs.NetbootdXdp.VerifierLog)
	}
	n, _ := strconv.Atoi(m[1])
	t.Logf("verifier: %d instructions processed (kernel limit 1,000,000, budget %d)\n%s", n, verifierBudget, objs.NetbootdXdp.VerifierLog)
	if n > verifierBudget {
		t.Errorf("verifier processed %d instructions, over the budget of %d", n, verifierBudget)
	}
}
