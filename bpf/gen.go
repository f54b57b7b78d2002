package bpf

// The committed netbootd_bpfel.go and netbootd_bpfel.o are this command's output: `make generate`
// reruns it (needs clang); `go build` never does.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type res_key -type res_val -type boot_key -type boot_val -type fp_config -type relay_key -type event -type counter -type reply6_val -type fp_config6 netbootd netbootd.c
// The counters' names come from enum counter, whose constants bpf2go writes (-type counter).
//go:generate go run golang.org/x/tools/cmd/stringer@v0.52.0 -type netbootdCounter -trimprefix netbootdCounterC_ -output counter_string.go
