// Package xdprestore is the peer program of the fast path's live-frame benchmark
// (bpf.BenchmarkXDPLiveTX): it restores each reply to the original request and drops it, and
// counts what it restored, so the benchmark counts replies that really arrived.
package xdprestore

// The committed restore_bpfel.go and restore_bpfel.o are this command's output: `make generate`
// reruns it (needs clang); `go build` never does.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type frame restore restore.c
