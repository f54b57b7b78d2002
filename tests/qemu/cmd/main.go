// Command cmd gives scripts (the demo) what tests/qemu gives tests:
//
//	go run ./tests/qemu/cmd payload                        # build (or find) the payload; prints KERNEL INITRD
//	go run ./tests/qemu/cmd args bios|uefi NAME MAC TAP DIR # prints QEMU's arguments, one per line
package main

import (
	"fmt"
	"os"

	"github.com/netbootd/netbootd/tests/qemu"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "qemu:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	switch {
	case len(args) == 1 && args[0] == "payload":
		p, err := qemu.Build(func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
		if err != nil {
			return err
		}
		fmt.Println(p.Kernel, p.Initrd)
		return nil
	case len(args) == 6 && args[0] == "args":
		fw := qemu.BIOS
		switch args[1] {
		case "bios":
		case "uefi":
			fw = qemu.UEFI
		default:
			return fmt.Errorf("firmware %q: want bios or uefi", args[1])
		}
		mem := 256
		if fw == qemu.UEFI {
			mem = 512
		}
		opt := qemu.Options{Name: args[2], MAC: args[3], Tap: args[4], Firmware: fw, MemoryMB: mem}
		a, err := qemu.Args(opt, args[5], args[5]+"/"+args[2]+".serial.log")
		if err != nil {
			return err
		}
		for _, s := range a {
			fmt.Println(s)
		}
		return nil
	}
	return fmt.Errorf("usage: payload | args bios|uefi NAME MAC TAP DIR")
}
