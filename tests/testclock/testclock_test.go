package testclock

import (
	"testing"
	"time"
)

func TestClockMovesOnlyWhenAdded(t *testing.T) {
	start := time.Unix(1_800_000_000, 0)
	c := New(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	c.Add(90 * time.Second)
	if got := c.Now(); !got.Equal(start.Add(90 * time.Second)) {
		t.Fatalf("after Add(90s) Now = %v, want %v", got, start.Add(90*time.Second))
	}
}
