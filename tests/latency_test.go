//go:build integration

package tests

import (
	"fmt"
	"slices"
	"time"
)

// latencySummary is "ok/total ok (P%), median M, max X": how many of a legitimate client's
// total requests succeeded, and the latencies of those that did, rounded to round. The attack
// tests log it before and during each flood.
func latencySummary(ok []time.Duration, total int, round time.Duration) string {
	if len(ok) == 0 {
		return fmt.Sprintf("0/%d ok", total)
	}
	s := slices.Clone(ok)
	slices.Sort(s)
	return fmt.Sprintf("%d/%d ok (%.0f%%), median %v, max %v", len(s), total, 100*float64(len(s))/float64(total),
		s[len(s)/2].Round(round), s[len(s)-1].Round(round))
}
