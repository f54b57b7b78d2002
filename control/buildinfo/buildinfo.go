// Package buildinfo holds what `make build` stamps into the binary (scripts/version.sh): the
// version, the commit and the commit's date, shown by `netbootd version`, the startup log line
// and the netbootd_build_info metric.
package buildinfo

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set at link time: -ldflags "-X github.com/netbootd/netbootd/control/buildinfo.version=...".
// The date is the commit's (reproducible builds), not the time of the build.
var version, commit, date string

// Info is one binary's identity.
type Info struct {
	Version   string // e.g. 0.1.0, 0.1.0-3-g1d38ebd, 0.1.0-dev.g1d38ebd-dirty
	Commit    string // the full commit hash, or "unknown"
	Date      string // the commit's date (RFC 3339), or "unknown"
	GoVersion string
}

// Get returns the stamped values; a binary built without `make build` (go build, go run) falls
// back to what the Go toolchain recorded, and "unknown" where it recorded nothing.
func Get() Info {
	return resolve(version, commit, date, readBuildInfo())
}

func readBuildInfo() map[string]string {
	s := map[string]string{}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			s[kv.Key] = kv.Value
		}
	}
	return s
}

func resolve(version, commit, date string, vcs map[string]string) Info {
	in := Info{Version: version, Commit: commit, Date: date, GoVersion: runtime.Version()}
	if in.Commit == "" {
		in.Commit = vcs["vcs.revision"]
	}
	if in.Date == "" {
		in.Date = vcs["vcs.time"]
	}
	if in.Version == "" && in.Commit != "" {
		short := in.Commit
		if len(short) > 12 {
			short = short[:12]
		}
		in.Version = "0.0.0-dev.g" + short
		if vcs["vcs.modified"] == "true" {
			in.Version += "-dirty"
		}
	}
	for _, f := range []*string{&in.Version, &in.Commit, &in.Date} {
		if *f == "" {
			*f = "unknown"
		}
	}
	return in
}

// String is the one-line form: "0.1.0 (commit 1d38ebd…, 2026-12-05T14:00:00Z, go1.26.8)".
func (i Info) String() string {
	c := i.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	return i.Version + " (commit " + c + ", " + i.Date + ", " + i.GoVersion + ")"
}

// Collector is netbootd_build_info{version,commit,date,goversion} 1, the way Prometheus
// exporters say which build runs.
func (i Info) Collector() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "netbootd_build_info",
		Help: "Always 1; the labels say which build of netbootd runs.",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit, "date": i.Date,
			"goversion": i.GoVersion},
	})
	g.Set(1)
	return g
}
