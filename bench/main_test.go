package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/harness/harnesstest"
)

// tinyConfig runs every scenario once, small enough for a test under -race: the figures mean
// nothing, but every code path of the program runs against the real services.
func tinyConfig(redis string) *config {
	return &config{
		Redis:        redis,
		PGPool:       5,
		Scenarios:    "all",
		Systems:      "all",
		Instances:    3,
		Query:        20 * time.Millisecond,
		Timeout:      5 * time.Second,
		Callers:      60,
		Rounds:       1,
		Rate:         200,
		Duration:     1200 * time.Millisecond,
		TTL:          time.Second,
		Batch:        5 * time.Millisecond,
		Stale:        10 * time.Second,
		Benchtime:    "20x",
		Count:        1,
		L1Keys:       50,
		Goroutines:   8,
		Keys:         500,
		Zipf:         1.1,
		HitRatios:    []float64{0.9},
		Warmup:       50 * time.Millisecond,
		Measure:      200 * time.Millisecond,
		L1Size:       10_000,
		L1TTL:        10 * time.Second,
		FleetSizes:   []int{1, 3},
		FleetWindows: []time.Duration{0, 10 * time.Millisecond},
		FleetRate:    200,
		FleetKeys:    50,
		FleetMeasure: 200 * time.Millisecond,
		FleetProbes:  5,
		parallel:     true,

		BatchKeys: 100, BatchSize: 10, BatchGoroutines: 4, MaxBatch: 20, Waves: 1, HotKeys: 20,
	}
}

// TestScenarios runs every scenario once on the Redis in STAMPEDE_REDIS_ADDR, and checks the
// tables it prints and what must hold on any machine: the lease sends one query fleet-wide for
// the just-deleted key, and nobody gets an error.
func TestScenarios(t *testing.T) {
	cfg := tinyConfig(integrationEnv(t, "STAMPEDE_REDIS_ADDR"))
	require.NoError(t, cfg.validate())
	out := runForTest(t, cfg)
	for _, h := range []string{"## Machine", "## a. ", "## b. ", "## c. ", "## d. ", "## e. ", "## f. ", "## g. ", "## h. "} {
		require.Contains(t, out, h)
	}
	for _, s := range systems() {
		require.Contains(t, out, "| "+s.Name+" ")
	}

	a := section(out, "## a. ")
	for _, slug := range []string{"lease", "lease-xfetch", "lease-xfetch-swr"} {
		require.Equal(t, "1", cell(t, a, 1, systemName(t, slug)), "%s: database queries", slug)
	}
	for _, s := range systems() {
		require.Equal(t, "0", cell(t, a, 5, s.Name), "%s: errors in scenario a", s.Name)
		require.Equal(t, "0", cell(t, section(out, "## b. "), 10, s.Name), "%s: errors in scenario b", s.Name)
	}
	for _, c := range []string{"raw go-redis GET + json.Unmarshal", "stampede Get, L1 off", "go-redis/cache Get, no local cache"} {
		require.NotEmpty(t, cell(t, section(out, "## c. "), 3, c), c)
	}
	require.Equal(t, "0", cell(t, section(out, "## d. "), 3, "otter v2 GetIfPresent"), "otter allocates nothing")
	e := section(out, "## e. ")
	for _, c := range []string{"raw go-redis (GET + json.Unmarshal, miss: SETEX)", "stampede, L1 off", "stampede, L1 on"} {
		require.Equal(t, "0", cell(t, e, 10, "90%", c), "%s: errors in scenario e", c)
	}
}

// TestPostgres runs the scenarios with a loader, on the PostgreSQL in STAMPEDE_POSTGRES_URL,
// that PostgreSQL counts.
func TestPostgres(t *testing.T) {
	cfg := tinyConfig(integrationEnv(t, "STAMPEDE_REDIS_ADDR"))
	cfg.Postgres = integrationEnv(t, "STAMPEDE_POSTGRES_URL")
	cfg.Scenarios, cfg.Systems = "stampede,hotkey", "raw,lease"
	out := runForTest(t, cfg)
	require.Contains(t, out, "PostgreSQL")
	a := section(out, "## a. ")
	require.Equal(t, "1", cell(t, a, 1, systemName(t, "lease")), "the lease: one query, counted by PostgreSQL")
	require.Equal(t, "0", cell(t, a, 5, systemName(t, "raw")), "no errors")
}

// TestFlags checks the defaults are the scenarios and that bad flags are refused.
func TestFlags(t *testing.T) {
	cfg, err := parseFlags(nil)
	require.NoError(t, err)
	require.Equal(t, 8, cfg.Instances)
	require.Equal(t, 2000, cfg.Callers)
	require.Equal(t, 50*time.Millisecond, cfg.Query)
	require.Equal(t, 2000.0, cfg.Rate)
	require.Equal(t, 10*time.Second, cfg.Duration)
	require.Equal(t, time.Second, cfg.TTL)
	require.Equal(t, 5*time.Millisecond, cfg.Batch)
	require.Equal(t, 64, cfg.Goroutines)
	require.Equal(t, 100_000, cfg.Keys)
	require.Equal(t, 1.1, cfg.Zipf)
	require.Equal(t, []float64{0.9, 1}, cfg.HitRatios)

	for _, args := range [][]string{
		{"-instances", "0"},
		{"-ttl", "500ms"},
		{"-zipf", "1"},
		{"-hit-ratios", "0.9,2"},
		{"-hit-ratios", "x"},
		{"-scenarios", "stampede,nope"},
		{"-systems", "lease,nope"},
		{"extra"},
	} {
		_, err := parseFlags(args)
		require.Error(t, err, "%q", args)
	}
	cfg, err = parseFlags([]string{"-scenarios", "l1, stampede", "-systems", "lease,raw"})
	require.NoError(t, err)
	names, err := cfg.scenarios()
	require.NoError(t, err)
	require.Equal(t, []string{"stampede", "l1"}, names, "in the order of a run")
	list, err := pickSystems(cfg.Systems)
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, "raw", list[0].Slug, "in the order of a run")
}

// TestTable checks the markdown the tables print.
func TestTable(t *testing.T) {
	tb := newTable("system", "queries")
	tb.add("a", 1)
	tb.add("longer name", thousands(12345))
	var b bytes.Buffer
	tb.write(&b)
	require.Equal(t, ""+
		"| system      | queries |\n"+
		"| ----------- | ------: |\n"+
		"| a           |       1 |\n"+
		"| longer name |  12,345 |\n\n", b.String())
	require.Equal(t, "1–3", span([]int{3, 1, 2}))
	require.Equal(t, "-1,000", thousands(-1000))
	require.Equal(t, time.Duration(2), latencies{1, 2, 3, 4}.percentile(0.5), "nearest rank")
	require.Equal(t, 2, latencies{1, 5, 9}.atLeast(5))
}

// runForTest runs cfg and returns what it printed, logging its progress.
func runForTest(t *testing.T, cfg *config) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, cfg, &out, harnesstest.Log{T: t}))
	t.Log("\n" + out.String())
	return out.String()
}

// section returns the part of out from the header that begins with prefix to the next one.
func section(out, prefix string) string {
	_, s, ok := strings.Cut(out, prefix)
	if !ok {
		return ""
	}
	s, _, _ = strings.Cut(s, "\n## ")
	return s
}

// cell returns the i-th cell, trimmed, of the row of the table in s whose leading cells are
// keys.
func cell(t *testing.T, s string, i int, keys ...string) string {
	t.Helper()
	for line := range strings.Lines(s) {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		if len(cells) > i && len(cells) >= len(keys) && slices.Equal(cells[:len(keys)], keys) {
			return cells[i]
		}
	}
	t.Fatalf("no row %q in:\n%s", keys, s)
	return ""
}

func systemName(t *testing.T, slug string) string {
	t.Helper()
	list, err := pickSystems(slug)
	require.NoError(t, err)
	return list[0].Name
}

// integrationEnv returns the variable name, or skips the test without it; with
// STAMPEDE_REQUIRE_INTEGRATION=1 (as CI sets) a missing variable fails it.
func integrationEnv(t testing.TB, name string) string {
	t.Helper()
	return harnesstest.Env(t, name, "the scenarios need the real service")
}
