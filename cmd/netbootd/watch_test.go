package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The watcher notices writes and replacement by rename, settles bursts into one notice, and
// ignores other files in the directory.
func TestWatchFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "netbootd.yaml")
	if err := os.WriteFile(path, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The debounce is long next to the microseconds between the burst's writes, so that a test
	// process starved of CPU between two writes still sees one burst (see make stress-test).
	const debounce = time.Second
	ch, err := watchFile(ctx, path, debounce)
	if err != nil {
		t.Fatal(err)
	}
	expect := func(what string, want bool) {
		t.Helper()
		// A notice comes within the debounce and one poll; wait far longer for one that is due,
		// and for twice the debounce for one that must not come.
		wait := 2 * debounce
		if want {
			wait = 30 * time.Second
		}
		select {
		case <-ch:
			if !want {
				t.Errorf("%s: a notice, want none", what)
			}
		case <-time.After(wait):
			if want {
				t.Errorf("%s: no notice", what)
			}
		}
	}
	for i := 0; i < 3; i++ { // a burst of writes: one notice
		if err := os.WriteFile(path, []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	expect("three writes", true)
	expect("after the burst", false)
	if err := os.WriteFile(filepath.Join(dir, "other.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect("another file", false)
	tmp := filepath.Join(dir, ".netbootd.yaml.swp")
	if err := os.WriteFile(tmp, []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	expect("replaced by rename", true)
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("a notice after cancel")
		}
	case <-time.After(30 * time.Second):
		t.Error("the channel did not close after cancel")
	}
}
