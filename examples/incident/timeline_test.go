package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// timelineConfig is the timeline scenario at the size of a test: about 25 timelines arrive
// while the first query (100 ms) runs.
func timelineConfig() *config {
	cfg := smallConfig()
	cfg.Scenario = scenarioTimeline
	cfg.Keys = 100
	cfg.Latency = 100 * time.Millisecond
	cfg.Duration = 400 * time.Millisecond
	cfg.Lead = 50 * time.Millisecond
	cfg.Tail = 50 * time.Millisecond
	cfg.Strategies = "naive,lease,recommended"
	return cfg
}

// TestTimeline replays the timeline on the embedded backends: with the library, each of the
// post's 51 keys is read from the database once, fleet-wide, in at most a query per instance.
func TestTimeline(t *testing.T) {
	cfg := timelineConfig()
	rep := replayForTest(t, cfg)
	requireTimelineShape(t, cfg, rep)

	var table bytes.Buffer
	rep.writeTable(&table)
	require.Contains(t, table.String(), "Timeline replay")
	require.Contains(t, table.String(), "MGET; 1 query of the misses")
}

// TestTimelineRealServices is TestTimeline on the Redis in STAMPEDE_REDIS_ADDR and the
// PostgreSQL in STAMPEDE_POSTGRES_URL, where the batch query is WHERE id = ANY($1).
func TestTimelineRealServices(t *testing.T) {
	cfg := timelineConfig()
	cfg.Redis = integrationEnv(t, "STAMPEDE_REDIS_ADDR")
	cfg.Postgres = integrationEnv(t, "STAMPEDE_POSTGRES_URL")
	rep := replayForTest(t, cfg)
	require.Contains(t, rep.Backends.Database, "PostgreSQL")
	requireTimelineShape(t, cfg, rep)
}

func requireTimelineShape(t *testing.T, cfg *config, rep *report) {
	t.Helper()
	keys := len(postKeys())
	by := map[string]*result{}
	for _, s := range rep.Strategies {
		r := s.Runs[0]
		by[r.Strategy] = r
		t.Logf("%-31s queries %3d rows %5d  p50 %v p99 %v max %v  errors %d timeouts %d",
			r.Strategy, r.Queries, r.Rows, r.HotP50, r.HotP99, r.HotMax, r.Errors, r.Timeouts)
		require.Equal(t, int(cfg.Rate*cfg.Duration.Seconds()), r.HotRequests, "%s: timeline requests", r.Strategy)
		require.Zero(t, r.Errors, "%s: errors", r.Strategy)
		require.Zero(t, r.Timeouts, "%s: timeouts", r.Strategy)
	}
	for _, name := range []string{"lease", "lease+early-refresh+invalidate"} {
		r := by[name]
		require.NotNil(t, r, name)
		require.Equal(t, keys, r.Rows, "%s: each of the post's keys read once, fleet-wide", name)
		require.Positive(t, r.Queries, name)
		require.LessOrEqual(t, r.Queries, cfg.Instances, "%s: at most a query per instance", name)
	}
	naive := by["naive (baseline)"]
	require.NotNil(t, naive)
	require.Greater(t, naive.Rows, 2*keys, "naive reads the post's keys again for every timeline that missed them")
}
