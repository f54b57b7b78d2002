package buildinfo

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestResolveStampedWins(t *testing.T) {
	in := resolve("0.1.0", "1d38ebd0123456789abcdef0123456789abcdef0", "2026-12-05T14:00:00Z",
		map[string]string{"vcs.revision": "ffff", "vcs.time": "2000-01-01T00:00:00Z", "vcs.modified": "true"})
	if in.Version != "0.1.0" || in.Commit != "1d38ebd0123456789abcdef0123456789abcdef0" || in.Date != "2026-12-05T14:00:00Z" {
		t.Fatalf("stamped values lost: %+v", in)
	}
	if got, want := in.String(), "0.1.0 (commit 1d38ebd01234, 2026-12-05T14:00:00Z, "+in.GoVersion+")"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
}

func TestResolveFallsBackToToolchain(t *testing.T) {
	in := resolve("", "", "", map[string]string{"vcs.revision": "1d38ebd0123456789abc", "vcs.time": "2026-12-05T14:00:00Z", "vcs.modified": "true"})
	if in.Version != "0.0.0-dev.g1d38ebd01234-dirty" || in.Commit != "1d38ebd0123456789abc" || in.Date != "2026-12-05T14:00:00Z" {
		t.Fatalf("toolchain fallback: %+v", in)
	}
	in = resolve("", "", "", map[string]string{})
	if in.Version != "unknown" || in.Commit != "unknown" || in.Date != "unknown" {
		t.Fatalf("nothing recorded: %+v", in)
	}
}

func TestCollector(t *testing.T) {
	in := Info{Version: "0.1.0", Commit: "abc", Date: "2026-12-05T14:00:00Z", GoVersion: "go1.26.8"}
	reg := prometheus.NewRegistry()
	reg.MustRegister(in.Collector())
	want := `# HELP netbootd_build_info Always 1; the labels say which build of netbootd runs.
# TYPE netbootd_build_info gauge
netbootd_build_info{commit="abc",date="2026-12-05T14:00:00Z",goversion="go1.26.8",version="0.1.0"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "netbootd_build_info"); err != nil {
		t.Fatal(err)
	}
}
