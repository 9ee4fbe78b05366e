// Command bench runs the same caching scenarios on stampede and on what it replaces or competes
// with, side by side in one run, and prints the figures as markdown tables.
//
// The contenders are raw go-redis (the incident's GET, and on a miss query and SETEX), otter v2
// alone (in-process, per instance), github.com/go-redis/cache/v9 (Once, with its TinyLFU local
// cache where it has a part), and stampede (Singleflight, Lease, and Lease with early refresh and
// stale-while-revalidate). The scenarios:
//
//	stampede    2,000 callers on 8 instances released at once on a just-deleted key
//	hotkey      one key with a 1 s TTL read 2,000 times a second across its expiries
//	l2          a hit in Redis, the L1 off, against GET + json.Unmarshal
//	l1          a hit in the process (parallel), against otter's GetIfPresent
//	throughput  8 instances, 64 goroutines, Zipf(1.1) keys over 100k keys, 90% hits
//	fleet       1 to 128 instances holding every key in their L1s, 1,000 writes/s: Redis's CPU and
//	            output per write, against raw SETs, and the L1 staleness after a write, by
//	            eviction window; on a single node, and on a cluster with -fleet-cluster
//	getmany     8 instances x 64 goroutines, GetMany of random 50-key subsets of 1,000 just-deleted keys
//	getmany-hot 100 keys with a 1 s TTL read together with GetMany 2,000 times a second
//
// It needs a real Redis (-redis, default $STAMPEDE_REDIS_ADDR or 127.0.0.1:6379). The loader of
// the first two scenarios sleeps in Go behind a counter, or with -postgres runs a pg_sleep query
// that PostgreSQL counts in a table of its own (bench_queries). Every Redis key the program
// writes starts with bench:<run id>: and is deleted when it ends.
//
//	go run .
//	go run . -scenarios stampede,hotkey -postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
//	go run . -scenarios l1,l2 -benchtime 2s -count 5
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stampede-cache/stampede/internal/harness"
)

// config is a run's settings, set by the flags.
type config struct {
	Redis     string // address or redis:// URL
	Postgres  string // connection URL; empty: the loader sleeps in Go
	PGPool    int    // database connections, the whole fleet together
	Scenarios string // comma-separated, or all
	Systems   string // comma-separated slugs of the contenders of stampede and hotkey, or all

	Instances int           // service instances, each with its own client and cache
	Query     time.Duration // of one database query
	Timeout   time.Duration // of one request

	// stampede
	Callers int
	Rounds  int

	// hotkey
	Rate     float64
	Duration time.Duration
	TTL      time.Duration
	Batch    time.Duration
	Stale    time.Duration

	// l1, l2
	Benchtime string
	Count     int
	L1Keys    int

	// throughput
	Goroutines int
	Keys       int
	Zipf       float64
	HitRatios  []float64
	Warmup     time.Duration
	Measure    time.Duration
	L1Size     int
	L1TTL      time.Duration

	// fleet
	FleetSizes   []int
	FleetWindows []time.Duration
	FleetRate    float64
	FleetKeys    int
	FleetMeasure time.Duration
	FleetProbes  int
	FleetCluster string // comma-separated addresses; empty: the single node only
	// getmany, getmany-hot
	BatchKeys       int // the key set of getmany
	BatchSize       int // keys per GetMany of getmany
	BatchGoroutines int // per instance, getmany
	MaxBatch        int // WithMaxBatch
	Waves           int // of getmany
	HotKeys         int // the hot batch of getmany-hot

	// parallel runs the contenders of stampede and hotkey at once, each in namespaces of its
	// own; only tests set it, to stay short, since contenders that share the CPU disturb each
	// other's figures.
	parallel bool
}

// scenarioNames lists the scenarios in the order a run takes them.
var scenarioNames = []string{"stampede", "hotkey", "l2", "l1", "throughput", "getmany", "getmany-hot", "fleet"}

func defaultRedis() string {
	if a := os.Getenv("STAMPEDE_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// parseFlags reads the command line into a config.
func parseFlags(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&c.Redis, "redis", defaultRedis(), "Redis `address` or redis:// URL; $STAMPEDE_REDIS_ADDR sets the default")
	fs.StringVar(&c.Postgres, "postgres", "", "PostgreSQL `URL`: the loader runs a pg_sleep query counted in the database (empty: a Go sleep)")
	fs.IntVar(&c.PGPool, "pg-pool", 20, "database connections of the whole fleet, with -postgres")
	fs.StringVar(&c.Scenarios, "scenarios", "all", "scenarios to run, comma-separated: "+strings.Join(scenarioNames, ", "))
	fs.StringVar(&c.Systems, "systems", "all", "contenders of stampede and hotkey, comma-separated slugs (see -list)")
	list := fs.Bool("list", false, "list the contenders of stampede and hotkey and exit")

	fs.IntVar(&c.Instances, "instances", 8, "service instances, each with its own Redis client and cache")
	fs.DurationVar(&c.Query, "query", 50*time.Millisecond, "latency of one database query (the loader)")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "deadline of one request")

	fs.IntVar(&c.Callers, "callers", 2000, "stampede: goroutines released together on the just-deleted key")
	fs.IntVar(&c.Rounds, "rounds", 3, "stampede: rounds per contender; latencies are pooled over them")

	fs.Float64Var(&c.Rate, "rate", 2000, "hotkey: requests per second, all instances together")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "hotkey: how long each contender is measured")
	fs.DurationVar(&c.TTL, "ttl", time.Second, "hotkey: time to live of the key (go-redis/cache refuses less than 1s)")
	fs.DurationVar(&c.Batch, "batch", 5*time.Millisecond, "hotkey: requests are sent in a batch this often")
	fs.DurationVar(&c.Stale, "stale", 10*time.Second, "hotkey: stale-while-revalidate window of the stampede contender that has one")

	fs.StringVar(&c.Benchtime, "benchtime", "1s", "l1, l2: duration or Nx of each benchmark, as go test -benchtime")
	fs.IntVar(&c.Count, "count", 3, "l1, l2: rounds of each benchmark, interleaved; the median is reported")
	fs.IntVar(&c.L1Keys, "l1-keys", 1000, "l1: keys the parallel readers cycle through")

	fs.IntVar(&c.Goroutines, "goroutines", 64, "throughput: goroutines, spread over the instances")
	fs.IntVar(&c.Keys, "keys", 100_000, "throughput: keys present in Redis, chosen by Zipf")
	fs.Float64Var(&c.Zipf, "zipf", 1.1, "throughput: Zipf exponent s (> 1)")
	hitRatios := fs.String("hit-ratios", "0.9,1", "throughput: shares of reads that ask for present keys, comma-separated, each a run; "+
		"the other reads ask for keys nobody has")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "throughput: unmeasured run before each measurement")
	fs.DurationVar(&c.Measure, "measure", 3*time.Second, "throughput: measured run of each contender")
	fs.IntVar(&c.L1Size, "l1-size", 10_000, "throughput: L1 entries of stampede with the L1 on")
	fs.DurationVar(&c.L1TTL, "l1-ttl", 10*time.Second, "throughput: how long stampede's L1 keeps an entry (the library's default is 10s)")

	fleetSizes := fs.String("fleet-sizes", "1,8,32,64,128", "fleet: instance counts, comma-separated, the first the reference")
	fleetWindows := fs.String("fleet-windows", "0,10ms", "fleet: eviction windows (WithEvictionWindow), comma-separated")
	fs.Float64Var(&c.FleetRate, "fleet-rate", 1000, "fleet: writes per second, all instances together")
	fs.IntVar(&c.FleetKeys, "fleet-keys", 2000, "fleet: keys of the working set, every one in every instance's L1")
	fs.DurationVar(&c.FleetMeasure, "fleet-measure", 5*time.Second, "fleet: how long the writes of each run are measured")
	fs.IntVar(&c.FleetProbes, "fleet-probes", 100, "fleet: writes whose staleness is measured, on up to 8 instances each")
	fs.StringVar(&c.FleetCluster, "fleet-cluster", os.Getenv("STAMPEDE_REDIS_CLUSTER_ADDRS"), "fleet: Redis Cluster `addresses`, comma-separated, to run on too; $STAMPEDE_REDIS_CLUSTER_ADDRS sets the default")
	fs.IntVar(&c.BatchKeys, "batch-keys", 1000, "getmany: keys of the set, just deleted before each wave")
	fs.IntVar(&c.BatchSize, "batch-size", 50, "getmany: keys of each GetMany, a random subset of the set")
	fs.IntVar(&c.BatchGoroutines, "batch-goroutines", 64, "getmany: goroutines per instance, released together")
	fs.IntVar(&c.MaxBatch, "max-batch", 100, "getmany, getmany-hot: keys per BatchLoader call (WithMaxBatch)")
	fs.IntVar(&c.Waves, "waves", 3, "getmany: waves, each on a fresh namespace")
	fs.IntVar(&c.HotKeys, "hot-keys", 100, "getmany-hot: keys read together (with -ttl, -rate, -duration, -batch)")

	if err := harness.Parse(fs, args); err != nil {
		return nil, err
	}
	for r := range strings.SplitSeq(*hitRatios, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil {
			return nil, fmt.Errorf("-hit-ratios: %w", err)
		}
		c.HitRatios = append(c.HitRatios, f)
	}
	for v := range strings.SplitSeq(*fleetSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("-fleet-sizes: %w", err)
		}
		c.FleetSizes = append(c.FleetSizes, n)
	}
	for v := range strings.SplitSeq(*fleetWindows, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("-fleet-windows: %w", err)
		}
		c.FleetWindows = append(c.FleetWindows, d)
	}
	if *list {
		for _, s := range systems() {
			fmt.Printf("%-17s %s\n", s.Slug, s.Name)
		}
		return nil, flag.ErrHelp
	}
	return c, c.validate()
}

func (c *config) validate() error {
	var p harness.Problems
	check := p.Check
	check(c.PGPool < 1, "-pg-pool must be at least 1")
	check(c.Instances < 1, "-instances must be at least 1")
	check(c.Query <= 0, "-query must be positive")
	check(c.Timeout <= 0, "-timeout must be positive")
	check(c.Callers < 1, "-callers must be at least 1")
	check(c.Rounds < 1, "-rounds must be at least 1")
	check(!(c.Rate > 0), "-rate must be positive")
	check(c.Duration <= 0, "-duration must be positive")
	check(c.TTL < time.Second, "-ttl must be at least 1s: go-redis/cache replaces a shorter TTL with an hour")
	check(c.TTL%time.Second != 0, "-ttl must be whole seconds: go-redis/cache and SETEX round it")
	check(c.Batch <= 0, "-batch must be positive")
	check(c.Stale < 0, "-stale may not be negative")
	check(c.Benchtime == "", "-benchtime may not be empty")
	check(c.Count < 1, "-count must be at least 1")
	check(c.L1Keys < 1, "-l1-keys must be at least 1")
	check(c.Goroutines < 1, "-goroutines must be at least 1")
	check(c.Keys < 2, "-keys must be at least 2")
	check(!(c.Zipf > 1), "-zipf must be greater than 1")
	check(len(c.HitRatios) == 0 || slices.ContainsFunc(c.HitRatios, func(r float64) bool { return !(r >= 0 && r <= 1) }),
		"-hit-ratios must be in [0, 1]")
	check(c.Warmup < 0, "-warmup may not be negative")
	check(c.Measure <= 0, "-measure must be positive")
	check(c.L1Size < 1, "-l1-size must be at least 1")
	check(len(c.FleetSizes) == 0 || slices.ContainsFunc(c.FleetSizes, func(n int) bool { return n < 1 }),
		"-fleet-sizes must be at least 1")
	check(len(c.FleetWindows) == 0 || slices.ContainsFunc(c.FleetWindows, func(d time.Duration) bool { return d < 0 }),
		"-fleet-windows may not be negative")
	check(!(c.FleetRate > 0), "-fleet-rate must be positive")
	check(c.FleetKeys < 1, "-fleet-keys must be at least 1")
	check(c.FleetMeasure <= 0, "-fleet-measure must be positive")
	check(c.FleetProbes < 0, "-fleet-probes may not be negative")
	check(c.BatchKeys < 1 || c.BatchSize < 1 || c.BatchSize > c.BatchKeys, "-batch-size must be in [1, -batch-keys]")
	check(c.BatchGoroutines < 1, "-batch-goroutines must be at least 1")
	check(c.MaxBatch < 1, "-max-batch must be at least 1")
	check(c.Waves < 1, "-waves must be at least 1")
	check(c.HotKeys < 1, "-hot-keys must be at least 1")
	_, err := c.scenarios()
	p.Add(err)
	_, err = pickSystems(c.Systems)
	p.Add(err)
	return p.Err()
}

// scenarios returns the scenarios c names, in the order a run takes them.
func (c *config) scenarios() ([]string, error) {
	names, unknown := harness.Pick(scenarioNames, c.Scenarios, func(s string) string { return s })
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown scenario %q (have %s)", unknown[0], strings.Join(scenarioNames, ", "))
	}
	return names, nil
}

func main() {
	harness.Main("bench", parseFlags, func(ctx context.Context, cfg *config) error {
		return run(ctx, cfg, os.Stdout, os.Stderr)
	})
}

// run runs the scenarios cfg names and prints their tables to out as each ends, and its
// progress to log.
func run(ctx context.Context, cfg *config, out, log io.Writer) error {
	names, err := cfg.scenarios()
	if err != nil {
		return err
	}
	e, err := openEnv(ctx, cfg)
	if err != nil {
		return err
	}
	defer e.close()
	logf := func(format string, args ...any) { fmt.Fprintf(log, "bench: "+format+"\n", args...) }
	logf("run %s; Redis %s; loader: %s", e.run, e.redisVersion, e.src.describe())
	e.writeMachine(out)
	for _, name := range names {
		start := time.Now()
		logf("%s...", name)
		var err error
		switch name {
		case "stampede":
			err = runStampede(ctx, cfg, e, out, logf)
		case "hotkey":
			err = runHotKey(ctx, cfg, e, out, logf)
		case "l2":
			err = runL2(ctx, cfg, e, out, logf)
		case "l1":
			err = runL1(ctx, cfg, e, out, logf)
		case "throughput":
			err = runThroughput(ctx, cfg, e, out, logf)
		case "fleet":
			err = runFleet(ctx, cfg, e, out, logf)
		case "getmany":
			err = runGetManyCold(ctx, cfg, e, out, logf)
		case "getmany-hot":
			err = runGetManyHot(ctx, cfg, e, out, logf)
		}
		if cerr := e.clean(context.WithoutCancel(ctx), e.prefix(name)); err == nil && cerr != nil {
			err = fmt.Errorf("deleting the keys of %s: %w", name, cerr)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		logf("%s done in %v", name, time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}
