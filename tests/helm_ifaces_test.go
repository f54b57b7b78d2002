//go:build integration

package tests

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	kubetest "github.com/netbootd/netbootd/tests/kube"
)

// The chart's interfaces: a list becomes `netbootd attach eth1 eth2` (one process for every
// interface); the one-interface value of older values files renders exactly as a list of one;
// both set, neither set, a name twice or an empty name fail with a message naming the value.
func TestHelmIfaces(t *testing.T) {
	chart, err := filepath.Abs(filepath.Join("..", "deploy", "helm", "netbootd"))
	if err != nil {
		t.Fatal(err)
	}
	h := &helmRunner{bin: kubetest.HelmBinary(t), chart: chart, home: t.TempDir()}

	if out, err := h.run("lint", "--strict", chart, "--kube-version", kubetest.Version, "--namespace", helmNamespace,
		"--set", "interfaces={eth1,eth2.100}"); err != nil {
		t.Fatalf("helm lint --strict with interfaces: %v\n%s", err, out)
	}

	two := h.render(t, "--set", "interfaces={eth1,eth2.100}")
	checkHelmObjects(t, "two interfaces", two, false, false)
	args := helmArgs(t, helmFind(t, two, "DaemonSet"))
	first := slices.IndexFunc(args, func(a string) bool { return strings.HasPrefix(a, "-") })
	if first < 0 || !slices.Equal(args[:first], []string{"attach", "eth1", "eth2.100"}) {
		t.Errorf("two interfaces: args %q, want attach eth1 eth2.100 before the flags", args)
	}

	// interface: eth1 (values files written for one interface) is interfaces: [eth1].
	one := h.render(t, "--set", "interface=eth1")
	list := h.render(t, "--set", "interfaces={eth1}")
	if len(one) != len(list) {
		t.Fatalf("interface=eth1 rendered %d objects, interfaces={eth1} %d", len(one), len(list))
	}
	for i := range one {
		if !reflect.DeepEqual(one[i].Object, list[i].Object) {
			t.Errorf("%s %s: interface=eth1 and interfaces={eth1} render differently:\n%v\n%v",
				one[i].GetKind(), one[i].GetName(), one[i].Object, list[i].Object)
		}
	}

	// helm template, not lint: lint reports a template's fail only as [INFO].
	for _, c := range []struct {
		name string
		args []string
		want []string // all in the output
	}{
		{"both set", []string{"--set", "interface=eth1", "--set", "interfaces={eth2,eth3}"},
			[]string{"interface (eth1) and interfaces ([eth2, eth3]) are both set", "interfaces: [eth1, eth2, eth3]"}},
		{"neither set", nil, []string{"interfaces: set the host interfaces", "--set interfaces={eth1,eth2}", "--set interface=eth1"}},
		{"neither set, both null", []string{"--set", "interfaces=null", "--set", "interface=null"}, []string{"interfaces: set the host interfaces"}},
		{"neither set, empty list", []string{"--set-json", "interfaces=[]"}, []string{"interfaces: set the host interfaces"}},
		{"a name twice", []string{"--set", "interfaces={eth1,eth1}"}, []string{"/interfaces", "equal"}},
		{"an empty name", []string{"--set", "interfaces={eth1,}"}, []string{"/interfaces/1", "minLength"}},
		{"a name too long", []string{"--set", "interfaces={eth1,abcdefghijklmnop}"}, []string{"/interfaces/1", "maxLength"}},
		{"a list of lists", []string{"--set-json", `interfaces=[["eth1"]]`}, []string{"/interfaces/0", "string"}},
	} {
		args := append([]string{"template", helmRelease, chart, "--kube-version", kubetest.Version, "--namespace", helmNamespace}, c.args...)
		out, err := h.run(args...)
		if err == nil {
			t.Errorf("%s: helm %s succeeded, want a failure naming %q:\n%s", c.name, strings.Join(args, " "), c.want, out)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: helm template failed without naming %q: %s", c.name, w, out)
			}
		}
	}
}
