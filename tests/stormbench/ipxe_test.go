package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The interpreter follows netbootd's chain script to the machine's own script, expanding the
// settings iPXE expands, and fetches the kernel and the initrd named with "--name NAME".
func TestStormScriptInterpreter(t *testing.T) {
	m := &machine{mac: net.HardwareAddr{2, 0, 0x5b, 0, 0, 7}, uuid: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}}
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.RequestURI())
		switch r.URL.Path {
		case "/ipxe/boot.ipxe":
			fmt.Fprintf(w, "#!ipxe\nchain --replace --autofree http://%s/ipxe/script?mac=${netX/mac:hexhyp}&uuid=${uuid}&arch=${buildarch}&serial=${serial:uristring}\n", r.Host)
		case "/ipxe/script":
			fmt.Fprint(w, "#!ipxe\nkernel /assets/vmlinuz initrd=initrd.img console=ttyS0\ninitrd --name initrd.img /assets/initrd.img\nboot\n")
		case "/assets/vmlinuz", "/assets/initrd.img":
			fmt.Fprint(w, strings.Repeat("x", 100000))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var b booted
	if err := m.runScript(context.Background(), srv.Client(), srv.URL+"/ipxe/boot.ipxe", &b); err != nil {
		t.Fatal(err)
	}
	want := []string{"/ipxe/boot.ipxe", "/ipxe/script?mac=02-00-5b-00-00-07&uuid=01020304-0506-0708-090a-0b0c0d0e0f10&arch=x86_64&serial=",
		"/assets/vmlinuz", "/assets/initrd.img"}
	if strings.Join(asked, " ") != strings.Join(want, " ") {
		t.Errorf("fetched %q, want %q", asked, want)
	}
	if b.kernel.bytes != 100000 || len(b.initrds) != 1 || b.initrds[0].bytes != 100000 {
		t.Errorf("kernel %+v, initrds %+v", b.kernel, b.initrds)
	}
}

// A script that exits instead of booting is a failure that says what it echoed.
func TestStormScriptExit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "#!ipxe\necho netbootd: no profile\nexit\n")
	}))
	defer srv.Close()
	m := &machine{mac: net.HardwareAddr{2, 0, 0x5b, 0, 0, 8}}
	err := m.runScript(context.Background(), srv.Client(), srv.URL+"/x", &booted{})
	if err == nil || !strings.Contains(err.Error(), "no profile") {
		t.Errorf("error %v, want the script's exit with what it echoed", err)
	}
}
