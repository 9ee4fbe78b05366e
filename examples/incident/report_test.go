package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata with the output the tests get")

// TestTableGolden checks the printed table against testdata/*.golden, so that a change of its
// format is a deliberate one: go test -run TestTableGolden -update rewrites them.
func TestTableGolden(t *testing.T) {
	for _, runs := range []int{1, 3} {
		name := map[int]string{1: "table-one-run", 3: "table-three-runs"}[runs]
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			fakeReport(runs).writeTable(&out)
			golden := filepath.Join("testdata", name+".golden")
			if *updateGolden {
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(golden, out.Bytes(), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err, "go test -run TestTableGolden -update writes it")
			require.Equal(t, string(want), out.String(), "the table's format changed: if on purpose, rerun with -update")
		})
	}
}

// TestSummarizeRuns checks the median, the range and the charted run of a strategy's runs.
func TestSummarizeRuns(t *testing.T) {
	run := func(queries, timeouts int, p99 time.Duration) *result {
		r := &result{Strategy: "naive (baseline)", Baseline: true, Invalidation: "DEL"}
		r.Queries, r.Timeouts, r.P99, r.HitRatio = queries, timeouts, millis(p99), float64(queries)/1000
		return r
	}
	s := summarizeRuns([]*result{run(120, 56, 226*time.Millisecond), run(67, 0, 104*time.Millisecond), run(120, 52, 184*time.Millisecond)})
	require.Equal(t, "naive (baseline)", s.Strategy)
	require.True(t, s.Baseline)
	require.Equal(t, 120, s.Median.Queries)
	require.Equal(t, 67, s.Min.Queries)
	require.Equal(t, 120, s.Max.Queries)
	require.Equal(t, 52, s.Median.Timeouts, "each figure has its own median")
	require.Equal(t, millis(184*time.Millisecond), s.Median.P99)
	require.Equal(t, 0.12, s.Median.HitRatio)
	require.Equal(t, 2, s.Charted, "the median run by queries, then by p99")

	even := summarizeRuns([]*result{run(10, 0, 0), run(40, 0, 0), run(20, 0, 0), run(30, 0, 0)})
	require.Equal(t, 20, even.Median.Queries, "of an even number of runs, the lower middle value")
	require.Equal(t, 2, even.Charted)

	one := summarizeRuns([]*result{run(5, 1, time.Millisecond)})
	require.Equal(t, one.Median, one.Min)
	require.Equal(t, one.Median, one.Max)
	require.Zero(t, one.Charted)
}

func TestSpan(t *testing.T) {
	require.Equal(t, "", span("40", "40"))
	require.Equal(t, "67–120", span("67", "120"))
	require.Equal(t, "184–226ms", span("184ms", "226ms"))
	require.Equal(t, "277µs–1.21ms", span("277µs", "1.21ms"))
	require.Equal(t, "97.5–98.0%", span("97.5%", "98.0%"))
}

// TestChart draws a made-up report in each format, and checks the SVG has the legend and
// the axis cut to the activity.
func TestChart(t *testing.T) {
	cfg, err := parseFlags(nil)
	require.NoError(t, err)
	rep := fakeReport(3)
	dir := t.TempDir()
	for _, ext := range []string{"svg", "png", "pdf"} {
		require.NoError(t, rep.writeChart(filepath.Join(dir, "incident."+ext), cfg), ext)
	}
	svg, err := os.ReadFile(filepath.Join(dir, "incident.svg"))
	require.NoError(t, err)
	for _, s := range rep.Strategies {
		require.Contains(t, string(svg), s.Strategy)
	}
	require.Contains(t, string(svg), "cut at 0.6 s")
	require.Contains(t, string(svg), "67–120 queries", "the range of the naive runs")

	from, to, _ := rep.xRange(cfg)
	require.InDelta(t, -0.3, from, 1e-9)
	require.InDelta(t, 0.6, to, 1e-9, "three intervals after the last query (0.2–0.3 s)")
}

// fakeReport is a report of runs rounds of three strategies, with made-up figures: the naive
// code varies from run to run, the lease does not, and the recommended configuration had
// Redis errors.
func fakeReport(runs int) *report {
	cfg := &config{Instances: 8, Rate: 3000, Duration: 2 * time.Second, Lead: 500 * time.Millisecond,
		Tail: 500 * time.Millisecond, Background: 500, Keys: 1000, Latency: 50 * time.Millisecond,
		Pool: 20, Timeout: 250 * time.Millisecond, TTL: time.Minute, Stale: 10 * time.Second}
	rep := &report{
		Backends: backendInfo{Redis: "Redis 127.0.0.1:6379",
			Database: "PostgreSQL 127.0.0.1:5432/test, table incident_profiles, 20 connections, pg_sleep(0.05) per query"},
		Parameters: cfg.parameters(),
		Runs:       runs,
	}
	ms := func(f float64) millis { return millis(f * float64(time.Millisecond)) }
	// series spreads queries over the intervals from the update on, 30 s of 100 ms from -0.5 s.
	series := func(qs ...int) ([]int, []millis) {
		s, p := make([]int, 31), make([]millis, 31)
		for i := range p {
			p[i] = ms(0.3)
		}
		for i, q := range qs {
			s[5+i] = q
			if q > 0 {
				p[5+i] = ms(50 + 4*float64(q))
			}
		}
		return s, p
	}
	naive := []struct {
		q, peak, timeouts int
		p99               float64
		s                 []int
	}{{120, 40, 54, 226, []int{40, 40, 40}}, {67, 30, 0, 104, []int{23, 30, 14}}, {118, 40, 56, 184, []int{40, 40, 38}}}
	var naiveRuns, leaseRuns, recRuns []*result
	for i := range runs {
		n := naive[i%len(naive)]
		r := &result{Strategy: "naive (baseline)", Baseline: true, Invalidation: "DEL"}
		r.Requests, r.HotRequests, r.Queries, r.HotQueries, r.PeakQueries = 7500, 6000, n.q, n.q, n.peak
		r.P50, r.P99, r.Max = ms(0.277+0.01*float64(i)), ms(n.p99), ms(251)
		r.Timeouts, r.Hits, r.Misses, r.HitRatio = n.timeouts, 7400-uint64(n.q), uint64(n.q), 0.975+0.001*float64(i)
		r.Series, r.P99Series = series(n.s...)
		r.SeriesStart = -0.5
		naiveRuns = append(naiveRuns, r)

		l := &result{Strategy: "lease", Invalidation: "Delete"}
		l.Requests, l.HotRequests, l.Queries, l.HotQueries, l.PeakQueries = 7500, 6000, 1, 1, 1
		l.P50, l.P99, l.Max = ms(0.003), ms(30), ms(54)
		l.Stale, l.StaleFor, l.Hits, l.Misses, l.HitRatio = 3, ms(1.5), 7300, 200, 0.979
		l.Series, l.P99Series = series(1)
		l.SeriesStart = -0.5
		leaseRuns = append(leaseRuns, l)

		c := &result{Strategy: "lease+early-refresh+invalidate", Invalidation: "Invalidate"}
		c.Requests, c.HotRequests, c.Queries, c.HotQueries, c.PeakQueries = 7500, 6000, 1, 1, 1
		c.P50, c.P99, c.Max = ms(0.004), ms(0.516), ms(6.18)
		c.Stale, c.StaleFor, c.Hits, c.HitRatio, c.RedisErrors = 179, ms(52), 7500, 1, uint64(2*i)
		c.Series, c.P99Series = series(1)
		c.SeriesStart = -0.5
		recRuns = append(recRuns, c)
	}
	for _, rs := range [][]*result{naiveRuns, leaseRuns, recRuns} {
		rep.Strategies = append(rep.Strategies, summarizeRuns(rs))
	}
	return rep
}
