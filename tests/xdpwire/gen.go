package xdpwire

// The committed wire_bpfel.go and wire_bpfel.o are this command's output: `make generate`
// reruns it (needs clang); `go build` never does.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type gen_config -type client wire wire.c
