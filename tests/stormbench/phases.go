package main

import (
	"fmt"
	"io"
	"slices"
	"syscall"
)

// phase is the spread of one boot step's duration over the machines that finished it.
type phase struct {
	Name string  `json:"name"`
	N    int     `json:"machines"`
	Min  float64 `json:"min_s"`
	P50  float64 `json:"p50_s"`
	P99  float64 `json:"p99_s"`
	Max  float64 `json:"max_s"`
	Last float64 `json:"last_machine_s"` // the step's duration for the machine done last
}

// steps are a machine's boot steps in order, each with its duration in seconds (ok false when
// the machine did not finish it). The HTTP step is split by what it fetched.
var steps = []struct {
	name string
	of   func(r *result) (float64, bool)
}{
	{"pxe_dhcp", func(r *result) (float64, bool) { return r.PXEDHCP - r.Start, r.PXEDHCP > 0 }},
	{"tftp", func(r *result) (float64, bool) { return r.TFTPSeconds, r.TFTPSeconds > 0 }},
	{"ipxe_dhcp", func(r *result) (float64, bool) { return r.IPXEDHCP - r.TFTP, r.IPXEDHCP > 0 }},
	{"http_scripts", func(r *result) (float64, bool) { return sumSeconds(r.Scripts), r.Done > 0 && r.IPXEDHCP > 0 }},
	{"http_kernel", func(r *result) (float64, bool) {
		if r.Kernel == nil || r.Done == 0 {
			return 0, false
		}
		return r.Kernel.Seconds, true
	}},
	{"http_initrd", func(r *result) (float64, bool) { return sumSeconds(r.Initrds), r.Done > 0 && r.IPXEDHCP > 0 }},
	{"whole_boot", func(r *result) (float64, bool) { return r.Done - r.Start, r.Done > 0 }},
}

func sumSeconds(fs []file) float64 {
	t := 0.0
	for _, f := range fs {
		t += f.Seconds
	}
	return t
}

// phases summarises each step over the machines, and gives the machine done last its own column.
func phases(results []result) []phase {
	last := -1
	for i := range results {
		if results[i].Done > 0 && (last < 0 || results[i].Done > results[last].Done) {
			last = i
		}
	}
	var out []phase
	for _, st := range steps {
		var xs []float64
		for i := range results {
			if d, ok := st.of(&results[i]); ok {
				xs = append(xs, d)
			}
		}
		p := phase{Name: st.name, N: len(xs)}
		if len(xs) > 0 {
			slices.Sort(xs)
			p.Min, p.Max = xs[0], xs[len(xs)-1]
			p.P50, p.P99 = xs[len(xs)/2], xs[min(len(xs)*99/100, len(xs)-1)]
		}
		if last >= 0 {
			p.Last, _ = st.of(&results[last])
		}
		out = append(out, p)
	}
	return out
}

// printPhases writes one line per step, "phase name=... machines=... min_s=..." (the benchmark
// script reads them).
func printPhases(w io.Writer, ps []phase) {
	for _, p := range ps {
		fmt.Fprintf(w, "phase name=%s machines=%d min_s=%.2f p50_s=%.2f p99_s=%.2f max_s=%.2f last_machine_s=%.2f\n",
			p.Name, p.N, p.Min, p.P50, p.P99, p.Max, p.Last)
	}
}

// cpuSeconds is this process's CPU time so far, user and system.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}
