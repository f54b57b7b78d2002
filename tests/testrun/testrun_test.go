package testrun

import (
	"context"
	"errors"
	"testing"
)

// fakeT records what Run reports, so a failing part can be shown to fail the test.
type fakeT struct {
	testing.TB
	cleanups []func()
	errors   []string
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Cleanup(fn func())     { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Errorf(string, ...any) { f.errors = append(f.errors, "error") }
func (f *fakeT) end() {
	for _, fn := range f.cleanups {
		fn()
	}
}

func TestRunStopsThePartWithTheTest(t *testing.T) {
	started := make(chan struct{})
	var stopped bool
	f := &fakeT{}
	Run(f, func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		stopped = true
		return nil
	})
	<-started
	f.end()
	if !stopped || len(f.errors) != 0 {
		t.Errorf("stopped %v, errors %v; want stopped and none", stopped, f.errors)
	}
}

func TestRunReportsTheError(t *testing.T) {
	f := &fakeT{}
	Run(f, func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("socket closed badly")
	})
	f.end()
	if len(f.errors) != 1 {
		t.Errorf("%d errors reported, want 1", len(f.errors))
	}
}
