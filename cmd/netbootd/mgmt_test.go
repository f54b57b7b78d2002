package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "token")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(good, []byte("  s3cret-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(mgmtTokenEnv, "from-the-environment-0123")
	for _, tt := range []struct {
		file, want string
		err        bool
	}{
		{good, "s3cret-0123456789abcdef", false}, // a file wins over the environment, trimmed
		{"", "from-the-environment-0123", false},
		{empty, "", true},
		{filepath.Join(dir, "missing"), "", true},
	} {
		got, err := readToken(tt.file)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("readToken(%q) = %q, %v; want %q, error %v", tt.file, got, err, tt.want, tt.err)
		}
	}
}

func TestOnBootNetwork(t *testing.T) {
	boot := netip.MustParsePrefix("10.10.0.0/24")
	for listen, want := range map[string]bool{
		"127.0.0.1:9180":          false,
		"192.168.1.5:9180":        false,
		":9180":                   true,
		"0.0.0.0:9180":            true,
		"[::]:9180":               true,
		"10.10.0.1:9180":          true,
		"[::ffff:10.10.0.1]:9180": true,
		"mgmt.example:9180":       false,
		"nonsense":                false,
	} {
		if got := onBootNetwork(listen, boot); got != want {
			t.Errorf("onBootNetwork(%q) = %v, want %v", listen, got, want)
		}
	}
}
