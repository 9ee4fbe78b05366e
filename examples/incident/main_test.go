package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/harness/harnesstest"
)

// smallConfig is a replay small enough for a test: a few instances, a short burst, and a slow
// query, so that the shapes the tests assert stand far from the noise of a busy machine.
//
// With a 250 ms query and 250 hot-key requests a second, about 60 requests arrive while the
// first query of the hot key runs: naive sends a query for each of them (its pool of 20
// serves them within the 3 s timeout), against the one of the lease.
func smallConfig() *config {
	return &config{
		Instances:  4,
		Rate:       250,
		Duration:   time.Second,
		Lead:       200 * time.Millisecond,
		Tail:       200 * time.Millisecond,
		Background: 100,
		Keys:       50,
		Latency:    250 * time.Millisecond,
		Pool:       20,
		Timeout:    3 * time.Second,
		TTL:        time.Minute,
		Stale:      10 * time.Second,
		Runs:       1,
		// The library's caches give Redis 2 s a call, not 250 ms: on a loaded machine, the
		// embedded Redis, in the test's process under the race detector, can take longer
		// than 250 ms to answer, and the library then answers without it (a Redis error,
		// and a load of its own), which is not the shape the tests assert.
		RedisTO:    2 * time.Second,
		Strategies: "all",
		Table:      "incident_test_profiles",
	}
}

// TestReplay replays the incident on the embedded backends, and checks what it prints.
func TestReplay(t *testing.T) {
	cfg := smallConfig()
	rep := replayForTest(t, cfg)
	requireShape(t, cfg, rep)

	var table bytes.Buffer
	rep.writeTable(&table)
	for _, s := range strategies() {
		require.Contains(t, table.String(), s.Name)
	}
	require.Contains(t, table.String(), "embedded Redis (miniredis")

	var js bytes.Buffer
	require.NoError(t, rep.writeJSON(&js))
	var back report
	require.NoError(t, json.Unmarshal(js.Bytes(), &back))
	require.Len(t, back.Strategies, len(strategies()))
	require.Equal(t, rep.Strategies[0].Median.Queries, back.Strategies[0].Median.Queries)
	require.Equal(t, rep.Strategies[0].Runs[0].Series, back.Strategies[0].Runs[0].Series)

	chart := filepath.Join(t.TempDir(), "incident.svg")
	require.NoError(t, rep.writeChart(chart, cfg))
	svg, err := os.ReadFile(chart)
	require.NoError(t, err)
	require.Contains(t, string(svg), "<svg")
}

// TestReplayRealServices replays the incident on the Redis in STAMPEDE_REDIS_ADDR and the
// PostgreSQL in STAMPEDE_POSTGRES_URL, whose query cost is pg_sleep.
func TestReplayRealServices(t *testing.T) {
	cfg := smallConfig()
	cfg.Redis = integrationEnv(t, "STAMPEDE_REDIS_ADDR")
	cfg.Postgres = integrationEnv(t, "STAMPEDE_POSTGRES_URL")
	rep := replayForTest(t, cfg)
	require.Contains(t, rep.Backends.Database, "PostgreSQL")
	requireShape(t, cfg, rep)
}

// TestFlags checks the defaults fit the promise of a replay in about a minute, and that bad
// flags are refused.
func TestFlags(t *testing.T) {
	cfg, err := parseFlags(nil)
	require.NoError(t, err)
	perStrategy := cfg.Lead + cfg.BurstAfter + cfg.Duration + cfg.Tail + cfg.Timeout
	require.Less(t, time.Duration(cfg.Runs)*5*perStrategy, 50*time.Second, "five strategies a round, with room for warming up")
	require.Equal(t, 1, cfg.Runs%2, "an odd number of runs has a median that is no tie-break")

	_, err = parseFlags([]string{"-instances", "0"})
	require.Error(t, err)
	_, err = parseFlags([]string{"-runs", "0"})
	require.ErrorContains(t, err, "-runs")
	_, err = parseFlags([]string{"-scenario", "nope"})
	require.ErrorContains(t, err, "-scenario")
	_, err = parseFlags([]string{"-scenario", "timeline", "-keys", "51"})
	require.ErrorContains(t, err, "-keys above 51")
	cfg, err = parseFlags([]string{"-scenario", "timeline"})
	require.NoError(t, err)
	require.Equal(t, scenarioTimeline, cfg.Scenario)
	_, err = parseFlags([]string{"-strategies", "naive,nope"})
	require.ErrorContains(t, err, `"nope"`)
	_, err = parseFlags([]string{"-table", "stampede_profiles", "-postgres", "postgres://x"})
	require.NoError(t, err, "the table name is checked when the database is opened")
	_, err = openPostgres(context.Background(), "postgres://127.0.0.1:1/x", "stampede_profiles", 1, time.Millisecond, 2)
	require.ErrorContains(t, err, "must match")
}

// requireShape asserts what must hold whatever the machine: the naive code sends at least ten
// times the queries of the lease; the lease sends exactly one query for the hot key, for its
// one update; the recommended configuration makes no request wait for a load; and every
// strategy serves the new profile soon after the update.
func requireShape(t *testing.T, cfg *config, rep *report) {
	t.Helper()
	require.Equal(t, cfg.Runs, rep.Runs)
	by := map[string]*result{}
	var all []*result
	for _, s := range rep.Strategies {
		require.Len(t, s.Runs, cfg.Runs, s.Strategy)
		require.Len(t, s.Runs[0].P99Series, len(s.Runs[0].Series), s.Strategy)
		r := s.Runs[0]
		by[r.Strategy] = r
		all = append(all, r)
		t.Logf("%-31s queries %4d (hot key %4d, peak %3d/100ms)  hot-key p50 %v p99 %v max %v  "+
			"errors %d timeouts %d  stale %d for %v  hits %d misses %d  redis errors %d",
			r.Strategy, r.Queries, r.HotQueries, r.PeakQueries, r.HotP50, r.HotP99, r.HotMax,
			r.Errors, r.Timeouts, r.Stale, r.StaleFor, r.Hits, r.Misses, r.RedisErrors)
	}
	naive, lease := by["naive (baseline)"], by["lease"]
	recommended := by["lease+early-refresh+invalidate"]
	require.NotNil(t, naive)
	require.NotNil(t, lease)
	require.NotNil(t, recommended)

	require.GreaterOrEqual(t, naive.Queries, 10*lease.Queries, "naive sends at least 10x the queries of the lease")
	require.Equal(t, 1, lease.HotQueries, "the lease sends one query for the one update of the hot key")
	require.Equal(t, 1, recommended.HotQueries, "so does the recommended configuration")

	// A request that waits for a load takes at least the query latency (250 ms); one served
	// from the L1 or Redis takes a Redis round trip at most, well under a millisecond on the
	// loopback, so even a -race build on a busy 2-core machine stays far below the bound.
	require.Zero(t, recommended.Misses, "no request of the recommended configuration waited for a load")
	require.Less(t, time.Duration(recommended.HotMax), cfg.Latency, "no hot-key request waited for the query")

	for _, r := range all {
		require.Zero(t, r.Errors, "%s: errors", r.Strategy)
		require.Zero(t, r.Timeouts, "%s: timeouts", r.Strategy)
		require.Equal(t, int(cfg.Rate*cfg.Duration.Seconds()), r.HotRequests, "%s: hot-key requests", r.Strategy)
		// The old profile may be served while the one refresh runs (the recommended
		// configuration) or until the L1 eviction reaches an instance (every library
		// strategy): a query's latency (250 ms) and a few round trips. A strategy that kept
		// serving it would do so through the burst (1 s); the bound between them leaves half
		// a second for a slow machine.
		require.Less(t, time.Duration(r.StaleFor), cfg.Latency+cfg.Duration/2, "%s: served the old profile for too long", r.Strategy)
	}
}

// replayForTest runs the replay, showing its progress in the test's log.
func replayForTest(t *testing.T, cfg *config) *report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	rep, err := replayAll(ctx, cfg, &progress{w: harnesstest.Log{T: t}})
	require.NoError(t, err)
	return rep
}

// integrationEnv returns the variable name, or skips the test without it; with
// STAMPEDE_REQUIRE_INTEGRATION=1 (as CI sets) a missing variable fails it.
func integrationEnv(t *testing.T, name string) string {
	t.Helper()
	return harnesstest.Env(t, name, "the replay on real Redis and PostgreSQL is skipped")
}
