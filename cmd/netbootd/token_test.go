package main

import (
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
