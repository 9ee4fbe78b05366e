package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stampede-cache/stampede/internal/harness"
)

// bin is the width of the intervals the report counts queries in.
const bin = 100 * time.Millisecond

// report is what a run measured: per strategy, the results of its rounds and their medians.
type report struct {
	Scenario   string      `json:"scenario"` // incident or timeline
	Backends   backendInfo `json:"backends"`
	Parameters parameters  `json:"parameters"`
	Runs       int         `json:"runs"`
	Strategies []*summary  `json:"strategies"`
}

// parameters are the run's settings, as the report states them.
type parameters struct {
	Instances    int     `json:"instances"`
	Rate         float64 `json:"hot_key_requests_per_second"`
	Burst        string  `json:"burst"`
	BurstAfter   string  `json:"burst_after_update"`
	Latency      string  `json:"query_latency"`
	Pool         int     `json:"database_connections"`
	Keys         int     `json:"keys"`
	Background   float64 `json:"background_requests_per_second"`
	Timeout      string  `json:"request_timeout"`
	TTL          string  `json:"ttl"`
	StaleWindow  string  `json:"stale_window"`
	RedisTimeout string  `json:"redis_timeout"`
}

func (c *config) parameters() parameters {
	return parameters{
		Instances: c.Instances, Rate: c.Rate, Burst: c.Duration.String(), BurstAfter: c.BurstAfter.String(),
		Latency: c.Latency.String(), Pool: c.Pool, Keys: c.Keys, Background: c.Background,
		Timeout: c.Timeout.String(), TTL: c.TTL.String(), StaleWindow: c.Stale.String(),
		RedisTimeout: c.RedisTO.String(),
	}
}

// result is what one replay of a strategy measured.
type result struct {
	Strategy     string `json:"strategy"`
	Baseline     bool   `json:"baseline"`
	Invalidation string `json:"write_path"`
	Batch        string `json:"batch_read,omitempty"` // how it read the timeline's keys
	figures

	// Series counts the queries that began in each 100 ms interval, the first beginning at
	// SeriesStart seconds from the update (negative: before it), and P99Series is the 99th
	// percentile latency of the requests that began in each (zero: none did).
	Series      []int    `json:"queries_per_100ms"`
	P99Series   []millis `json:"p99_ms_per_100ms"`
	SeriesStart float64  `json:"series_start_s"`
}

// figures are the numbers a replay measured, one per column of the table. Latencies are of
// every request, hot key and background; the Hot ones of the hot key's only.
type figures struct {
	Requests    int `json:"requests"`
	HotRequests int `json:"hot_key_requests"`
	// Queries counts the lookups the database ran, HotQueries those of the hot key, and
	// PeakQueries the most that began in one 100 ms interval.
	Queries     int `json:"queries"`
	HotQueries  int `json:"hot_key_queries"`
	PeakQueries int `json:"peak_queries_per_100ms"`
	// Rows counts the rows the queries returned to their callers.
	Rows int `json:"rows_read"`

	P50    millis `json:"p50_ms"`
	P99    millis `json:"p99_ms"`
	Max    millis `json:"max_ms"`
	HotP50 millis `json:"hot_key_p50_ms"`
	HotP99 millis `json:"hot_key_p99_ms"`
	HotMax millis `json:"hot_key_max_ms"`

	Errors   int `json:"errors"`
	Timeouts int `json:"timeouts"`
	// Stale counts the hot-key requests begun after the write path returned that got the old
	// profile, and StaleFor is how long after it the last of them began.
	Stale    int    `json:"stale_responses"`
	StaleFor millis `json:"stale_for_ms"`
	// Hits and Misses count requests answered from the cache and requests that were not (that
	// queried the database or waited for a query).
	Hits     uint64  `json:"hits"`
	Misses   uint64  `json:"misses"`
	HitRatio float64 `json:"hit_ratio"`
	// RedisErrors counts the Redis calls that failed inside the library, which answers its
	// callers anyway (the baselines return such errors, and they count among Errors).
	RedisErrors uint64 `json:"redis_errors"`
}

// millis is a duration that JSON shows in milliseconds.
type millis time.Duration

func (m millis) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(m)/float64(time.Millisecond), 'f', 3, 64), nil
}

func (m *millis) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	*m = millis(f * float64(time.Millisecond))
	return err
}

// String is the duration with about three significant digits.
func (m millis) String() string { return harness.Duration(time.Duration(m), "") }

// summarize turns what a replay recorded into its result.
func summarize(s strategy, cfg *config, tl timeline, upd update, samples []sample, queries []query, c counts) *result {
	r := &result{Strategy: s.Name, Baseline: s.Baseline, Invalidation: s.Invalidation}
	if cfg.Scenario == scenarioTimeline {
		r.Batch = s.Batch
	}
	r.Hits, r.Misses, r.RedisErrors = c.hits, c.misses, c.redisErrors
	if n := c.hits + c.misses; n > 0 {
		r.HitRatio = float64(c.hits) / float64(n)
	}
	var all, hot []time.Duration
	var lastStale time.Time
	for _, x := range samples {
		r.Requests++
		all = append(all, x.took)
		switch x.outcome {
		case timedOut:
			r.Timeouts++
		case failed:
			r.Errors++
		}
		if !x.hot {
			continue
		}
		r.HotRequests++
		hot = append(hot, x.took)
		if x.outcome == ok && !x.at.Before(upd.done) && x.version < upd.version {
			r.Stale++
			lastStale = x.at
		}
	}
	if r.Stale > 0 {
		r.StaleFor = millis(lastStale.Sub(upd.done))
	}
	r.P50, r.P99, r.Max = percentiles(all)
	r.HotP50, r.HotP99, r.HotMax = percentiles(hot)

	binOf := func(t time.Time) int { return int(math.Floor(float64(t.Sub(tl.update)) / float64(bin))) }
	first, last := binOf(tl.start), binOf(tl.end)
	for _, q := range queries {
		if q.at.Before(tl.start) {
			continue // warming up
		}
		r.Queries++
		r.Rows += q.rows
		if q.hot {
			r.HotQueries++
		}
		last = max(last, binOf(q.at))
	}
	r.Series = make([]int, last-first+1)
	r.SeriesStart = float64(first) * bin.Seconds()
	for _, q := range queries {
		if !q.at.Before(tl.start) {
			r.Series[binOf(q.at)-first]++
		}
	}
	took := make([][]time.Duration, len(r.Series))
	for _, x := range samples {
		if i := binOf(x.at) - first; i >= 0 && i < len(took) {
			took[i] = append(took[i], x.took)
		}
	}
	r.P99Series = make([]millis, len(took))
	for i, ds := range took {
		_, r.P99Series[i], _ = percentiles(ds)
	}
	r.PeakQueries = slices.Max(r.Series)
	return r
}

// percentiles returns the median, the 99th percentile (nearest rank) and the maximum of ds.
func percentiles(ds []time.Duration) (p50, p99, worst millis) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	rank := func(p float64) millis { return millis(harness.NearestRank(ds, p)) }
	return rank(0.50), rank(0.99), millis(ds[len(ds)-1])
}

// writeTable prints the report as a table: a row per strategy with the median of its runs,
// and under it, where the runs differ, a row with their least and most.
func (rep *report) writeTable(w io.Writer) {
	p := rep.Parameters
	timeline := rep.Scenario == scenarioTimeline
	if timeline {
		fmt.Fprintf(w, "\nTimeline replay: %d instances; a profile update at t0 deletes the viral post's %d keys (%s and its %d commenters),\n"+
			"then %.0f req/s for %s each read all %d at once; %.0f req/s on %d other keys throughout.\n",
			p.Instances, 1+commenters, hotKey, commenters, p.Rate, p.Burst, 1+commenters, p.Background, p.Keys-1-commenters)
	} else {
		fmt.Fprintf(w, "\nIncident replay: %d instances; a profile update at t0, then %.0f req/s on %s for %s; "+
			"%.0f req/s on %d other keys throughout.\n",
			p.Instances, p.Rate, hotKey, p.Burst, p.Background, p.Keys-1)
	}
	fmt.Fprintf(w, "Query %s, %d database connections, request timeout %s, TTL %s.\n",
		p.Latency, p.Pool, p.Timeout, p.TTL)
	fmt.Fprintf(w, "Redis:    %s\nDatabase: %s\n\n", rep.Backends.Redis, rep.Backends.Database)
	if rep.Runs > 1 {
		fmt.Fprintf(w, "Each strategy ran %d times: its row is the median of each column, the row below it the\n"+
			"least and the most of its runs where they differ.\n\n", rep.Runs)
	}

	columns := []struct {
		head string
		cell func(f *figures) string
	}{
		{"queries", func(f *figures) string { return strconv.Itoa(f.Queries) }},
		{"peak/100ms", func(f *figures) string { return strconv.Itoa(f.PeakQueries) }},
		{"p50", func(f *figures) string { return f.P50.String() }},
		{"p99", func(f *figures) string { return f.P99.String() }},
		{"max", func(f *figures) string { return f.Max.String() }},
		{"errors", func(f *figures) string { return strconv.Itoa(f.Errors) }},
		{"timeouts", func(f *figures) string { return strconv.Itoa(f.Timeouts) }},
		{"stale", func(f *figures) string { return strconv.Itoa(f.Stale) }},
		{"hit ratio", func(f *figures) string { return fmt.Sprintf("%.1f%%", 100*f.HitRatio) }},
	}
	if timeline {
		// What the timeline asks of the database is its queries and rows; the requests'
		// latencies and errors are the timelines' (p50, p99 and max of every request, the
		// background's included, are in the JSON).
		columns = columns[:1]
		columns = append(columns, []struct {
			head string
			cell func(f *figures) string
		}{
			{"rows", func(f *figures) string { return strconv.Itoa(f.Rows) }},
			{"peak/100ms", func(f *figures) string { return strconv.Itoa(f.PeakQueries) }},
			{"p50", func(f *figures) string { return f.HotP50.String() }},
			{"p99", func(f *figures) string { return f.HotP99.String() }},
			{"max", func(f *figures) string { return f.HotMax.String() }},
			{"errors", func(f *figures) string { return strconv.Itoa(f.Errors) }},
			{"timeouts", func(f *figures) string { return strconv.Itoa(f.Timeouts) }},
			{"stale", func(f *figures) string { return strconv.Itoa(f.Stale) }},
		}...)
	}
	rows := [][]string{{"strategy", "write path"}}
	left := 2
	if timeline {
		rows[0] = append(rows[0], "reads the 51 keys by")
		left = 3
	}
	for _, c := range columns {
		rows[0] = append(rows[0], c.head)
	}
	for _, s := range rep.Strategies {
		median, spread := []string{s.Strategy, s.Invalidation}, []string{"  min–max", ""}
		if timeline {
			median, spread = append(median, s.Batch), append(spread, "")
		}
		varies := false
		for _, c := range columns {
			lo, hi := c.cell(&s.Min), c.cell(&s.Max)
			median = append(median, c.cell(&s.Median))
			spread = append(spread, span(lo, hi))
			varies = varies || lo != hi
		}
		rows = append(rows, median)
		if varies {
			rows = append(rows, spread)
		}
	}
	writeColumns(w, rows, left)
	if timeline {
		fmt.Fprintf(w, "\nrows: rows the queries returned; p50, p99, max: of the timeline requests. The baselines have no\n"+
			"batch read of the library's kind: they read the %d keys as the column says.\n", 1+commenters)
	}

	worst := ""
	if rep.Runs > 1 {
		worst = " in its worst run"
	}
	for _, s := range rep.Strategies {
		if n := s.Max.RedisErrors; n > 0 {
			fmt.Fprintf(w, "%s: %d Redis calls failed%s; the library answered its callers anyway.\n", s.Strategy, n, worst)
		}
	}
}

// span shows the range from lo to hi ("67–120", "184–250ms", "277µs–1.21ms"), or nothing if
// they are the same.
func span(lo, hi string) string {
	if lo == hi {
		return ""
	}
	unit := func(s string) string {
		return s[len(strings.TrimRightFunc(s, func(r rune) bool { return !unicode.IsDigit(r) })):]
	}
	if u := unit(lo); u == unit(hi) {
		lo = strings.TrimSuffix(lo, u)
	}
	return lo + "–" + hi
}

// writeColumns prints rows as a table whose first left columns are aligned to the left and
// the others to the right, two spaces apart.
func writeColumns(w io.Writer, rows [][]string, left int) {
	var widths []int
	for _, row := range rows {
		for i, cell := range row {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for _, row := range rows {
		var line strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if i > 0 {
				line.WriteString("  ")
			}
			if i < left {
				line.WriteString(cell + pad)
			} else {
				line.WriteString(pad + cell)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(line.String(), " "))
	}
}

// writeJSON prints the report as JSON.
func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
