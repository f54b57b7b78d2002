// Command xdp-pass attaches an XDP_PASS program to an interface (see package xdppass); the
// demo and benchmarks run it on the peer of netbootd's veth.
package main

import (
	"fmt"
	"os"

	"github.com/netbootd/netbootd/tests/xdppass"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: xdp-pass IFACE")
		os.Exit(2)
	}
	if err := xdppass.Attach(os.Args[1], false); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
