//go:build integration

package netns

import (
	"net"
	"os/exec"
	"strings"
	"testing"
)

func TestVethPingAndCleanup(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		a := New(t, "nbn")
		b := New(t, "nbn")
		name = a.Name()
		Veth(t, a, "va", "10.99.0.1/24", b, "vb", "10.99.0.2/24")
		a.Run(t, "ping", "-c1", "-W2", "10.99.0.2")
		err := b.Do(t, func() error {
			ifs, err := net.Interfaces()
			if err != nil {
				return err
			}
			for _, i := range ifs {
				if i.Name == "vb" {
					return nil
				}
			}
			t.Errorf("vb not visible from inside namespace: %v", ifs)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), name) {
		t.Fatalf("namespace %s left behind: %s", name, out)
	}
}
