// Command incident replays the incident that stampede exists to prevent, and measures what each
// way of caching does to the database and to the users.
//
// A write path updates a celebrity's profile and invalidates its cache entry; a viral post then
// sends K service instances R requests a second for that profile, while other profiles get their
// usual traffic. The replay runs the incident with each strategy, one after another on the same
// machine: the incident's own code (naive), the usual lock-and-poll fix (lock-poll), and the
// library's Singleflight, Lease, and recommended configuration. It does so for several rounds
// (-runs), each round running every strategy once, so that a busy moment of the machine does not
// fall on one strategy only. It prints, per strategy, the median of its runs and their range:
// the database queries, request latencies, errors and hit ratio. It draws the median run of each
// strategy: the database queries and the 99th percentile latency per 100 ms.
//
// With -scenario timeline it replays the viral post's timeline instead: the write path deletes
// the post's 51 keys (the celebrity and 50 commenters) in one call, and each request of the
// burst reads all 51 at once, with GetMany and a one-query BatchLoader (WHERE id = ANY($1))
// for the library, and as such code does for the baselines, which have no batch API. The table
// adds the rows the queries read; there is no chart.
//
// With no flags it needs nothing installed: Redis is miniredis, in process, and the database
// is a model with a fixed connection pool and a fixed query latency. With -redis and -postgres
// (or REDIS_URL and DATABASE_URL) it uses a real Redis and a real PostgreSQL table, whose query
// cost is pg_sleep.
//
//	go run .
//	go run . -redis 127.0.0.1:6379 -postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//	go run . -instances 16 -rate 5000 -latency 100ms -runs 5 -json
//	go run . -scenario timeline
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/stampede-cache/stampede/internal/harness"
)

// config is the replay's settings, set by the flags.
type config struct {
	Instances  int           // simulated service instances, each with its own cache and Redis client
	Rate       float64       // hot-key requests per second, all instances together
	Duration   time.Duration // of the burst
	BurstAfter time.Duration // from the update to the burst
	Lead       time.Duration // background traffic before the update
	Tail       time.Duration // background traffic after the burst
	Background float64       // requests per second on the other keys
	Keys       int           // profiles, the hot one included
	Latency    time.Duration // of one database query
	Pool       int           // database connections
	Timeout    time.Duration // of one request
	TTL        time.Duration // of a cached profile
	Stale      time.Duration // stale-while-revalidate and stale-if-error window of the recommended configuration
	Runs       int           // rounds, each running every strategy once
	RedisTO    time.Duration // deadline of each Redis call of the library's caches

	Scenario   string // incident or timeline
	Strategies string // comma-separated slugs, or all
	Redis      string // address or redis:// URL; empty: embedded
	Postgres   string // connection URL; empty: embedded model
	Table      string // PostgreSQL table, created and seeded by the program
	Chart      string // file the chart is written to; empty: none
	JSON       bool   // print JSON rather than a table
}

// usage begins the help: what the program does, in its first line.
const usage = `incident replays a cache stampede against each caching strategy, and shows what the database and the users felt.

A profile update deletes a hot key's cache entry, then a viral burst of requests arrives for it.
Each strategy runs this timeline on the same backends, once per round, for -runs rounds: about
a minute with the defaults (under 20 s a round). The table shows, per strategy, the median of
its runs and their range; the chart (-chart) its median run: queries and p99 latency per
100 ms. With no flags, Redis and the database are embedded; -redis and -postgres use real ones.

-scenario timeline replays the viral post's timeline instead: the update deletes the post's 51
keys (the celebrity and 50 commenters), and each burst request reads all 51 at once, with
GetMany and one query (WHERE id = ANY($1)) for the library; the table adds the rows read.

Usage: go run . [flags]

Flags:
`

// parseFlags reads the command line into a config.
func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("incident", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	fs.IntVar(&c.Instances, "instances", 8, "simulated service instances `K`, each with its own cache and Redis client")
	fs.Float64Var(&c.Rate, "rate", 3000, "hot-key requests per second `R`, all instances together")
	fs.DurationVar(&c.Duration, "duration", 2*time.Second, "length `T` of the viral burst")
	fs.DurationVar(&c.BurstAfter, "burst-after", 0, "time from the profile update to the burst")
	fs.DurationVar(&c.Lead, "lead", 500*time.Millisecond, "background traffic before the update")
	fs.DurationVar(&c.Tail, "tail", 500*time.Millisecond, "background traffic after the burst")
	fs.Float64Var(&c.Background, "background", 500, "requests per second on the other keys")
	fs.IntVar(&c.Keys, "keys", 1000, "profiles, the hot one included")
	fs.DurationVar(&c.Latency, "latency", 50*time.Millisecond, "latency of one database query")
	fs.IntVar(&c.Pool, "pool", 20, "database connections")
	fs.DurationVar(&c.Timeout, "timeout", 250*time.Millisecond, "deadline of one request")
	fs.DurationVar(&c.TTL, "ttl", time.Minute, "time to live of a cached profile")
	fs.DurationVar(&c.Stale, "stale", 10*time.Second, "stale-while-revalidate and stale-if-error window of the recommended configuration")
	fs.DurationVar(&c.RedisTO, "redis-timeout", 250*time.Millisecond, "deadline of each Redis call of the library's caches (stampede.WithRedisTimeout; its default)")
	fs.IntVar(&c.Runs, "runs", 3, "rounds `N`, each running every strategy once; the table shows the median of the N runs and their range")
	fs.StringVar(&c.Scenario, "scenario", scenarioIncident, "what the burst's requests read: incident (a Get of "+hotKey+") or timeline (the post's 51 keys at once)")
	fs.StringVar(&c.Strategies, "strategies", "all", "strategies to run, comma-separated: naive, lock-poll, singleflight, lease, recommended")
	fs.StringVar(&c.Redis, "redis", os.Getenv("REDIS_URL"), "Redis `address` or redis:// URL (default $REDIS_URL; empty: embedded miniredis)")
	fs.StringVar(&c.Postgres, "postgres", os.Getenv("DATABASE_URL"), "PostgreSQL `URL` (default $DATABASE_URL; empty: embedded database model)")
	fs.StringVar(&c.Table, "table", "incident_profiles", "PostgreSQL table the program creates and seeds (name must start with incident_)")
	fs.StringVar(&c.Chart, "chart", "incident.svg", "`file` the chart is written to (.svg, .png or .pdf); empty: no chart")
	fs.BoolVar(&c.JSON, "json", false, "print the results as JSON instead of a table")
	if err := harness.Parse(fs, args); err != nil {
		return nil, err
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var p harness.Problems
	check := p.Check
	check(c.Instances < 1, "-instances must be at least 1")
	check(!(c.Rate > 0), "-rate must be positive")
	check(c.Duration <= 0, "-duration must be positive")
	check(c.BurstAfter < 0 || c.Lead < 0 || c.Tail < 0, "-burst-after, -lead and -tail may not be negative")
	check(c.Background < 0, "-background may not be negative")
	check(c.Keys < 2, "-keys must be at least 2: the hot key and another")
	check(c.Scenario != scenarioIncident && c.Scenario != scenarioTimeline, "-scenario must be incident or timeline")
	check(c.Scenario == scenarioTimeline && c.Keys <= len(postKeys()),
		fmt.Sprintf("-scenario timeline needs -keys above %d: the post's keys and others", len(postKeys())))
	check(c.Latency <= 0, "-latency must be positive")
	check(c.Pool < 1, "-pool must be at least 1")
	check(c.Timeout <= 0, "-timeout must be positive")
	check(c.TTL <= 0, "-ttl must be positive")
	check(c.Stale < 0, "-stale may not be negative")
	check(c.Runs < 1, "-runs must be at least 1")
	check(c.RedisTO <= 0, "-redis-timeout must be positive")
	_, err := pickStrategies(c.Strategies)
	p.Add(err)
	return p.Err()
}

func main() {
	harness.Main("incident", parseFlags, func(ctx context.Context, cfg *config) error {
		return run(ctx, cfg, os.Stdout, newProgress(os.Stderr))
	})
}

// run replays the incident with every strategy cfg names, and prints and draws the results.
func run(ctx context.Context, cfg *config, out io.Writer, prog *progress) error {
	rep, err := replayAll(ctx, cfg, prog)
	if err != nil {
		return err
	}
	if cfg.JSON {
		err = rep.writeJSON(out)
	} else {
		rep.writeTable(out)
	}
	if err != nil {
		return err
	}
	if cfg.Chart != "" && cfg.Scenario != scenarioTimeline { // the chart is of the incident
		if err := rep.writeChart(cfg.Chart, cfg); err != nil {
			return fmt.Errorf("chart: %w", err)
		}
		abs, err := filepath.Abs(cfg.Chart)
		if err != nil {
			abs = cfg.Chart
		}
		if cfg.JSON {
			prog.done("Chart: " + abs) // stdout holds the JSON alone
		} else {
			fmt.Fprintf(out, "\nChart of the median runs, database queries and p99 latency per 100 ms:\n%s\n", abs)
		}
	}
	return nil
}

// replayAll opens the backends and replays the incident cfg.Runs times with each strategy:
// round by round, each round running every strategy once, in turn.
func replayAll(ctx context.Context, cfg *config, prog *progress) (*report, error) {
	list, err := pickStrategies(cfg.Strategies)
	if err != nil {
		return nil, err
	}
	runs := max(1, cfg.Runs)
	b, err := openBackends(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer b.close()
	rep := &report{Scenario: cfg.Scenario, Backends: b.describe(), Parameters: cfg.parameters(), Runs: runs}
	prog.done(fmt.Sprintf("Redis: %s; database: %s", rep.Backends.Redis, rep.Backends.Database))
	results := make([][]*result, len(list))
	total := runs * len(list)
	for round := range runs {
		for i, s := range list {
			prefix := fmt.Sprintf("[%*d/%d] %-31s", len(strconv.Itoa(total)), round*len(list)+i+1, total, s.Name)
			prog.show(prefix + " warming up")
			r, err := replay(ctx, cfg, b, s, round, func(status string) { prog.show(prefix + " " + status) })
			if err != nil {
				prog.done("")
				return nil, err
			}
			rows := ""
			if cfg.Scenario == scenarioTimeline {
				rows = fmt.Sprintf(" (%d rows)", r.Rows)
			}
			prog.done(fmt.Sprintf("%s done: %s%s, peak %d/100ms, p99 %v, %d timeouts", prefix, queries(r.Queries), rows, r.PeakQueries, r.P99, r.Timeouts))
			results[i] = append(results[i], r)
		}
	}
	for _, rs := range results {
		rep.Strategies = append(rep.Strategies, summarizeRuns(rs))
	}
	return rep, nil
}
