package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede"
)

// tputValueTTL is the TTL of every value of the throughput scenario: longer than a run, so that
// the present keys stay present.
const tputValueTTL = 10 * time.Minute

// A tputSystem is a contender of the throughput scenario.
type tputSystem struct {
	name string
	// open starts the instances, in namespace ns, loading with load.
	open func(e *env, cfg *config, ns string, load loadFunc) (*tputFleet, error)
	// lib tells which namespace it reads: the library's or the raw keys'.
	lib bool
}

// tputFleet is the instances of a throughput run.
type tputFleet struct {
	calls   atomic.Int64 // Redis commands the instances sent
	get     []func(ctx context.Context, key string) (profile, error)
	caches  []*stampede.Cache[profile] // the library's, for their Stats
	closers []func() error
}

func (f *tputFleet) stats() stampede.Stats {
	var s stampede.Stats
	for _, c := range f.caches {
		x := c.Stats()
		s.L1Hits += x.L1Hits
		s.L2Hits += x.L2Hits
		s.Misses += x.Misses
		s.Loads += x.Loads
	}
	return s
}

// client returns a new client of the run's Redis that counts its commands in f.calls.
func (f *tputFleet) client(e *env) *redis.Client {
	c := e.client()
	c.AddHook(countHook{&f.calls})
	f.closers = append(f.closers, c.Close)
	return c
}

func (f *tputFleet) close() {
	for i := len(f.closers) - 1; i >= 0; i-- {
		_ = f.closers[i]()
	}
}

// tputSystems lists the contenders of the throughput scenario, raw go-redis first.
func tputSystems(cfg *config) []tputSystem {
	return []tputSystem{
		{name: "raw go-redis (GET + json.Unmarshal, miss: SETEX)", open: openTputNaive},
		{name: "stampede, L1 off", open: openTputStampede(stampede.WithoutL1()), lib: true},
		{name: "stampede, L1 on", open: openTputStampede(stampede.WithL1(cfg.L1Size, cfg.L1TTL)), lib: true},
	}
}

func openTputNaive(e *env, cfg *config, ns string, load loadFunc) (*tputFleet, error) {
	f := &tputFleet{}
	for range cfg.Instances {
		n := &naive{rdb: f.client(e), ns: ns, ttl: tputValueTTL, load: load}
		f.get = append(f.get, n.Get)
	}
	return f, nil
}

func openTputStampede(opts ...stampede.Option) func(*env, *config, string, loadFunc) (*tputFleet, error) {
	return func(e *env, cfg *config, ns string, load loadFunc) (*tputFleet, error) {
		f := &tputFleet{}
		for range cfg.Instances {
			sc, err := stampede.New[profile](f.client(e), append([]stampede.Option{stampede.WithNamespace(ns), stampede.WithTTL(tputValueTTL)}, opts...)...)
			if err != nil {
				f.close()
				return nil, err
			}
			f.closers = append(f.closers, sc.Close)
			f.caches = append(f.caches, sc)
			f.get = append(f.get, func(ctx context.Context, key string) (profile, error) { return sc.Get(ctx, key, load) })
		}
		return f, nil
	}
}

// tputResult is what one contender did in the measured part of a throughput run.
type tputResult struct {
	ops      int64
	elapsed  time.Duration
	loads    int64
	calls    int64         // Redis commands
	cpu      time.Duration // of this process, user and system
	redisCPU time.Duration // of the Redis server, user and system (other clients of it included)
	errors   int64
	stats    stampede.Stats // the library's counters over the measurement, zero for raw
}

func (r tputResult) perSecond() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// runThroughput is scenario e: cfg.Goroutines goroutines spread over cfg.Instances instances
// read keys as fast as they can. For each hit ratio r of cfg.HitRatios, a share r of the reads
// asks for one of cfg.Keys keys, all present in Redis, chosen by Zipf(cfg.Zipf); the others ask
// for a key nobody has, which each contender loads (an instant loader) and stores, as it would
// a miss.
func runThroughput(ctx context.Context, cfg *config, e *env, out io.Writer, logf func(string, ...any)) error {
	keys := make([]string, cfg.Keys)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
	}
	rawNS, libNS := e.prefix("throughput", "raw"), e.prefix("throughput", "lib")
	start := time.Now()
	if err := preloadRaw(ctx, e, rawNS, keys); err != nil {
		return fmt.Errorf("preloading the raw keys: %w", err)
	}
	if err := preloadLib(ctx, e, libNS, keys); err != nil {
		return fmt.Errorf("preloading the library's keys: %w", err)
	}
	logf("  %s keys preloaded in Redis for raw and for stampede in %v", thousands(int64(len(keys))), time.Since(start).Round(time.Millisecond))

	fmt.Fprintf(out, "## e. Throughput\n\n")
	fmt.Fprintf(out, "%d instances, %d goroutines spread over them, reading as fast as they can for %v after %v of warm-up. "+
		"A share of the reads (the hit ratio) asks for one of %s keys present in Redis, chosen by Zipf(s=%.2g); the others "+
		"ask for a key nobody has, which the contender loads (an instant loader) and stores. stampede's L1: %s entries, "+
		"%v. Redis calls/op counts the commands the instances sent (a Lua script is one), not the pub/sub messages they received.\n\n",
		cfg.Instances, cfg.Goroutines, cfg.Measure, cfg.Warmup, thousands(int64(cfg.Keys)), cfg.Zipf, thousands(int64(cfg.L1Size)), cfg.L1TTL)
	t := newTable("hit ratio", "contender", "ops/s", "vs raw", "L1 hits", "Redis hits", "loads", "Redis calls/op",
		"CPU/op: bench", "CPU/op: Redis", "errors")
	t.left = 2
	list := tputSystems(cfg)
	run := 0
	for _, hr := range cfg.HitRatios {
		var raw float64
		for _, s := range list {
			ns := rawNS
			if s.lib {
				ns = libNS
			}
			r, err := throughputRun(ctx, cfg, e, s, ns, keys, hr, "miss"+strconv.Itoa(run))
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			run++
			if raw == 0 {
				raw = r.perSecond()
			}
			logf("  hit ratio %.2f: %-45s %s ops/s", hr, s.name, thousands(int64(r.perSecond())))
			// Shares of the reads: counted by the library's Stats for the library, whose
			// window differs from the count of reads by the reads in flight at its edges.
			reads := r.ops
			if s.lib {
				reads = int64(r.stats.L1Hits + r.stats.L2Hits + r.stats.Misses)
			}
			share := func(n int64) string { return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(max(reads, 1))) }
			l1, l2 := "–", share(r.ops-r.loads)
			if s.lib {
				l1, l2 = share(int64(r.stats.L1Hits)), share(int64(r.stats.L2Hits))
			}
			t.add(fmt.Sprintf("%.0f%%", 100*hr), s.name, thousands(int64(r.perSecond())), ratio(r.perSecond(), raw), l1, l2,
				share(r.loads), fmt.Sprintf("%.2f", float64(r.calls)/float64(max(r.ops, 1))),
				perOp(r.cpu, r.ops), perOp(r.redisCPU, r.ops), r.errors)
		}
	}
	t.write(out)
	return nil
}

// throughputRun runs one contender at hitRatio: warm-up, then measurement. The keys nobody has
// start with missing, which no other run uses.
func throughputRun(ctx context.Context, cfg *config, e *env, s tputSystem, ns string, keys []string, hitRatio float64, missing string) (tputResult, error) {
	var loads atomic.Int64
	measuring := atomic.Bool{}
	load := func(_ context.Context, key string) (profile, error) {
		if measuring.Load() {
			loads.Add(1)
		}
		return profileOf(key), nil
	}
	f, err := s.open(e, cfg, ns, load)
	if err != nil {
		return tputResult{}, err
	}
	defer f.close()

	const (
		warming = iota
		measure
		stop
	)
	var phase atomic.Int32
	var ops, failed atomic.Int64
	var wg sync.WaitGroup
	seed := rand.Uint64()
	for g := range cfg.Goroutines {
		get := f.get[g%len(f.get)]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			zipf := rand.NewZipf(rng, cfg.Zipf, 1, uint64(len(keys)-1))
			miss := []byte(missing + ":" + strconv.Itoa(g) + ":")
			base := len(miss)
			var n, done, errs int64
			for {
				ph := phase.Load()
				if ph == stop {
					break
				}
				var key string
				if rng.Float64() < hitRatio {
					key = keys[zipf.Uint64()]
				} else {
					miss = strconv.AppendInt(miss[:base], n, 10)
					key = string(miss)
					n++
				}
				if _, err := get(ctx, key); err != nil {
					errs++
				}
				if ph == measure {
					done++
				}
			}
			ops.Add(done)
			failed.Add(errs)
		})
	}
	sleep(ctx, cfg.Warmup)
	before, calls := f.stats(), f.calls.Load()
	cpu, redisCPU := processCPU(), e.redisCPU(ctx)
	measuring.Store(true)
	phase.Store(measure)
	begin := time.Now()
	sleep(ctx, cfg.Measure)
	phase.Store(stop)
	elapsed := time.Since(begin)
	measuring.Store(false)
	after, calls := f.stats(), f.calls.Load()-calls
	cpu, redisCPU = processCPU()-cpu, e.redisCPU(ctx)-redisCPU
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return tputResult{}, err
	}
	return tputResult{
		ops: ops.Load(), elapsed: elapsed, loads: loads.Load(), calls: calls, errors: failed.Load(),
		cpu: cpu, redisCPU: redisCPU,
		stats: stampede.Stats{
			L1Hits: after.L1Hits - before.L1Hits,
			L2Hits: after.L2Hits - before.L2Hits,
			Misses: after.Misses - before.Misses,
			Loads:  after.Loads - before.Loads,
		},
	}, nil
}

// countHook counts the commands a client sends, pipelined or not; messages a subscription
// receives are not commands and are not counted.
type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// perOp formats d/ops in microseconds.
func perOp(d time.Duration, ops int64) string {
	if d <= 0 || ops == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f µs", float64(d)/float64(ops)/1e3)
}

// processCPU returns the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// sleep waits for d or the end of ctx.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// preloadRaw writes the JSON of every key under ns, pipelined.
func preloadRaw(ctx context.Context, e *env, ns string, keys []string) error {
	for i := 0; i < len(keys); i += 1000 {
		pipe := e.admin.Pipeline()
		for _, k := range keys[i:min(i+1000, len(keys))] {
			raw, _ := json.Marshal(profileOf(k))
			pipe.Set(ctx, ns+":"+k, raw, tputValueTTL)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
	}
	return nil
}

// preloadLib writes every key through the library (Set), from 32 goroutines.
func preloadLib(ctx context.Context, e *env, ns string, keys []string) error {
	c := e.client()
	defer c.Close()
	sc, err := stampede.New[profile](c, stampede.WithNamespace(ns), stampede.WithTTL(tputValueTTL), stampede.WithoutL1())
	if err != nil {
		return err
	}
	defer sc.Close()
	const workers = 32
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(keys) && errs[w] == nil; i += workers {
				errs[w] = sc.Set(ctx, keys[i], profileOf(keys[i]))
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
