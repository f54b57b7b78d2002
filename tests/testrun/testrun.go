// Package testrun runs a part's Run(ctx) for the length of one test.
package testrun

import (
	"context"
	"testing"
	"time"
)

// stopPatience is how long the test waits for run to return once its context ends: long,
// because tests also run on small, busy machines; a part that stops returns at once.
const stopPatience = time.Minute

// Run calls run on its own goroutine with a context that ends when the test does; the test
// then waits for run to return and fails if it returned an error or did not return.
func Run(t testing.TB, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(stopPatience):
			t.Errorf("Run did not return %v after its context ended", stopPatience)
		}
	})
}
