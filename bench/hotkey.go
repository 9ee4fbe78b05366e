package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// hotResult is what one system did in the hotkey scenario.
type hotResult struct {
	took     latencies // of every request
	errors   int
	loads    int // database queries that began while requests were sent
	expiries int // bursts of those queries: loads that began within a quarter of a TTL of the burst's first
	worst    int // queries of the largest burst
}

// runHotKey is scenario b: per system, a fleet reads one key whose values live cfg.TTL at
// cfg.Rate requests a second for cfg.Duration, sent in batches every cfg.Batch without waiting
// for earlier ones (open loop). It reports the loads and how they cluster around the expiries,
// and the requests that stalled: those that took at least the query's latency.
func runHotKey(ctx context.Context, cfg *config, e *env, out io.Writer, logf func(string, ...any)) error {
	list, err := pickSystems(cfg.Systems)
	if err != nil {
		return err
	}
	results := make([]hotResult, len(list))
	err = forEach(cfg.parallel, list, func(i int, s system) error {
		r, err := hotKeyRun(ctx, cfg, e, s)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		results[i] = r
		logf("  %-42s %d loads in %d expiries, %d stalls, p99 %s", s.Name, r.loads, r.expiries,
			r.took.atLeast(cfg.Query), ms(r.took.percentile(0.99)))
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "## b. A hot key across its expiries\n\n")
	fmt.Fprintf(out, "%d instances; one key, TTL %v; %s requests/s for %v (%s requests), sent in batches every %v "+
		"round-robin over the instances, each on its own goroutine, without waiting for earlier ones. "+
		"Loader: %s. A stall is a request that took at least the query's %v; "+
		"the next column counts those that took a fifth of it, which waited for a load that had begun before them. "+
		"Expiries are the bursts of loads (loads that began within TTL/4 of the burst's first); "+
		"the value is reloaded about %.0f times in the run.\n\n",
		cfg.Instances, cfg.TTL, thousands(int64(cfg.Rate)), cfg.Duration, thousands(int64(cfg.Rate*cfg.Duration.Seconds())),
		cfg.Batch, e.src.describe(), cfg.Query, cfg.Duration.Seconds()/cfg.TTL.Seconds())
	waited := cfg.Query / 5
	t := newTable("system", "loads", "expiries", "loads/expiry", "worst expiry", "stalls", "≥ "+ms(waited), "p50", "p99", "max", "errors")
	for i, s := range list {
		r := results[i]
		per := "–"
		if r.expiries > 0 {
			per = fmt.Sprintf("%.1f", float64(r.loads)/float64(r.expiries))
		}
		t.add(s.Name, r.loads, r.expiries, per, r.worst, r.took.atLeast(cfg.Query), r.took.atLeast(waited),
			ms(r.took.percentile(0.5)), ms(r.took.percentile(0.99)), ms(r.took.max()), r.errors)
	}
	t.write(out)
	return nil
}

// hotKeyRun runs scenario b on s.
func hotKeyRun(ctx context.Context, cfg *config, e *env, s system) (hotResult, error) {
	ns := e.prefix("hotkey", s.Slug)
	defer func() { _ = e.clean(context.WithoutCancel(ctx), ns) }()
	q := e.src.queries("hotkey:" + s.Slug)
	f, err := s.open(e, cfg, ns, cfg.TTL, q.load)
	if err != nil {
		return hotResult{}, err
	}
	defer f.close()
	// Warm up: every instance reads the key at once, so that the instances that load it on
	// their own (otter, go-redis/cache without a value in Redis) load it together and their
	// copies expire together, as after a deploy or an invalidation.
	warm := make([]error, len(f.instances))
	var wg sync.WaitGroup
	for i, inst := range f.instances {
		wg.Go(func() { _, warm[i] = inst.Get(ctx, hotKey) })
	}
	wg.Wait()
	if err := errors.Join(warm...); err != nil {
		return hotResult{}, fmt.Errorf("warming up: %w", err)
	}

	total := int(cfg.Rate * cfg.Duration.Seconds())
	took := make(latencies, total)
	var failed atomic.Int64
	var requests sync.WaitGroup
	start := time.Now()
	tick := time.NewTicker(cfg.Batch)
	defer tick.Stop()
	for sent := 0; sent < total; {
		select {
		case <-ctx.Done():
			requests.Wait()
			return hotResult{}, ctx.Err()
		case <-tick.C:
		}
		due := min(total, int(time.Since(start).Seconds()*cfg.Rate))
		for ; sent < due; sent++ {
			i, inst := sent, f.instances[sent%len(f.instances)]
			requests.Go(func() {
				begin := time.Now()
				rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
				p, err := inst.Get(rctx, hotKey)
				took[i] = time.Since(begin)
				cancel()
				if err != nil || p.ID != hotKey {
					failed.Add(1)
				}
			})
		}
	}
	end := time.Now()
	requests.Wait()

	r := hotResult{took: took, errors: int(failed.Load())}
	starts := q.between(start, end)
	r.loads = len(starts)
	for i, burst := 0, 0; i < len(starts); i++ {
		if i == 0 || starts[i].Sub(starts[burst]) > cfg.TTL/4 {
			r.expiries++
			burst = i
		}
		r.worst = max(r.worst, i-burst+1)
	}
	return r, nil
}
