package main

import (
	"cmp"
	"slices"
)

// A summary is what the runs of one strategy measured: each run's result, and per figure the
// median of the runs and their range. One run of the naive code can differ from the next by
// half its queries, so a single run says little; the median of a few, with the least and the
// most beside it, says what to expect.
type summary struct {
	Strategy     string `json:"strategy"`
	Baseline     bool   `json:"baseline"`
	Invalidation string `json:"write_path"`
	Batch        string `json:"batch_read,omitempty"` // how it read the timeline's keys

	// Median, Min and Max are taken figure by figure, so Median's figures may come from
	// different runs. Of an even number of runs, the median is the lower of the two middle
	// values: always a value that a run measured.
	Median figures `json:"median"`
	Min    figures `json:"min"`
	Max    figures `json:"max"`

	// Charted is the index in Runs of the run the chart draws: the median run by queries
	// (then by p99, then by timeouts).
	Charted int       `json:"charted_run"`
	Runs    []*result `json:"runs"`
}

// summarizeRuns returns the summary of the runs of one strategy; runs may not be empty.
func summarizeRuns(runs []*result) *summary {
	first := runs[0]
	s := &summary{Strategy: first.Strategy, Baseline: first.Baseline, Invalidation: first.Invalidation, Batch: first.Batch, Runs: runs}
	// Every figure, by its address in a figures value, in the order fields lists them.
	fields := func(f *figures) []any {
		return []any{&f.Requests, &f.HotRequests, &f.Queries, &f.HotQueries, &f.PeakQueries, &f.Rows,
			&f.P50, &f.P99, &f.Max, &f.HotP50, &f.HotP99, &f.HotMax,
			&f.Errors, &f.Timeouts, &f.Stale, &f.StaleFor, &f.Hits, &f.Misses, &f.HitRatio, &f.RedisErrors}
	}
	med, lo, hi := fields(&s.Median), fields(&s.Min), fields(&s.Max)
	all := make([][]any, len(runs))
	for i, r := range runs {
		all[i] = fields(&r.figures)
	}
	for j := range med {
		switch med[j].(type) {
		case *int:
			spread(all, j, med[j].(*int), lo[j].(*int), hi[j].(*int))
		case *uint64:
			spread(all, j, med[j].(*uint64), lo[j].(*uint64), hi[j].(*uint64))
		case *float64:
			spread(all, j, med[j].(*float64), lo[j].(*float64), hi[j].(*float64))
		case *millis:
			spread(all, j, med[j].(*millis), lo[j].(*millis), hi[j].(*millis))
		default:
			panic("summarizeRuns: a figure of an unknown type")
		}
	}

	order := make([]int, len(runs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ra, rb := runs[a], runs[b]
		return cmp.Or(cmp.Compare(ra.Queries, rb.Queries), cmp.Compare(ra.P99, rb.P99), cmp.Compare(ra.Timeouts, rb.Timeouts))
	})
	s.Charted = order[(len(order)-1)/2]
	return s
}

// spread sets med, lo and hi to the median, the least and the most of figure j of the runs,
// all[i] listing the figures of run i.
func spread[T cmp.Ordered](all [][]any, j int, med, lo, hi *T) {
	vs := make([]T, len(all))
	for i := range all {
		vs[i] = *all[i][j].(*T)
	}
	slices.Sort(vs)
	*med, *lo, *hi = vs[(len(vs)-1)/2], vs[0], vs[len(vs)-1]
}
