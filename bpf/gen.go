package bpf

// The committed netbootd_bpfel.go and netbootd_bpfel.o are this command's output: `make generate`
// reruns it (needs clang); `go build` never does.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type res_key -type res_val -type boot_key -type boot_val -type fp_config -type relay_key -type event netbootd netbootd.c
