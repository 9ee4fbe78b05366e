package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// stampedeResult is what one system did in the stampede scenario, over every round.
type stampedeResult struct {
	queries []int     // database queries, per round
	first   latencies // from the release to the first query, per round
	took    latencies // of every caller of every round, from the release
	errors  int
}

// runStampede is scenario a: per system and round, a fresh fleet; the key is written and then
// deleted through the first instance, and cfg.Callers goroutines spread over the instances,
// created first and waiting on a channel, are released together to read it. It reports the
// queries the database ran and the callers' latencies, measured from the release.
func runStampede(ctx context.Context, cfg *config, e *env, out io.Writer, logf func(string, ...any)) error {
	list, err := pickSystems(cfg.Systems)
	if err != nil {
		return err
	}
	results := make([]stampedeResult, len(list))
	err = forEach(cfg.parallel, list, func(i int, s system) error {
		r := &results[i]
		for round := range cfg.Rounds {
			n, first, took, errs, err := stampedeRound(ctx, cfg, e, s, round)
			if err != nil {
				return fmt.Errorf("%s: %w", s.Name, err)
			}
			r.queries = append(r.queries, n)
			r.first = append(r.first, first)
			r.took = append(r.took, took...)
			r.errors += errs
			logf("  %-42s round %d: %d queries, p99 %s", s.Name, round+1, n, ms(took.percentile(0.99)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "## a. Stampede on a just-deleted key\n\n")
	fmt.Fprintf(out, "%d instances, each with its own Redis client and cache; %s goroutines spread over them, "+
		"created first and released together by closing a channel; latency from the release. "+
		"The key was written, then deleted through the first instance, just before. "+
		"Loader: %s. %d round(s) per system, a fresh fleet each; queries per round, latencies pooled. "+
		"First query at: when the first query began, after the release (median of the rounds).\n\n",
		cfg.Instances, thousands(int64(cfg.Callers)), e.src.describe(), cfg.Rounds)
	t := newTable("system", "DB queries", "p50", "p99", "max", "errors", "first query at")
	for i, s := range list {
		r := results[i]
		t.add(s.Name, span(r.queries), ms(r.took.percentile(0.5)), ms(r.took.percentile(0.99)), ms(r.took.max()), r.errors,
			ms(r.first.percentile(0.5)))
	}
	t.write(out)
	return nil
}

// stampedeRound runs one round of scenario a on s and returns the queries the database ran,
// when the first began after the release, the callers' latencies, and how many callers got an
// error.
func stampedeRound(ctx context.Context, cfg *config, e *env, s system, round int) (n int, first time.Duration, took latencies, errs int, err error) {
	ns := e.prefix("stampede", s.Slug, strconv.Itoa(round))
	defer func() { _ = e.clean(context.WithoutCancel(ctx), ns) }()
	q := e.src.queries("stampede:" + s.Slug + ":" + strconv.Itoa(round))
	f, err := s.open(e, cfg, ns, time.Minute, q.load)
	if err != nil {
		return 0, 0, nil, 0, err
	}
	defer f.close()
	if err := f.set(ctx, hotKey, profileOf(hotKey)); err != nil {
		return 0, 0, nil, 0, fmt.Errorf("writing the key: %w", err)
	}
	if err := f.del(ctx, hotKey); err != nil {
		return 0, 0, nil, 0, fmt.Errorf("deleting the key: %w", err)
	}

	took = make(latencies, cfg.Callers)
	var failed atomic.Int64
	var t0 time.Time // written before release is closed, read after it
	release := make(chan struct{})
	var ready, done sync.WaitGroup
	for i := range cfg.Callers {
		inst := f.instances[i%len(f.instances)]
		ready.Add(1)
		done.Go(func() {
			ready.Done()
			<-release
			rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			p, err := inst.Get(rctx, hotKey)
			took[i] = time.Since(t0)
			cancel()
			if err != nil || p.ID != hotKey {
				failed.Add(1)
			}
		})
	}
	ready.Wait()
	t0 = time.Now()
	close(release)
	done.Wait()
	f.close() // ends anything the systems run in the background, so that every query is counted
	if starts := q.between(t0, time.Now()); len(starts) > 0 {
		first = starts[0].Sub(t0)
	}
	n, err = e.src.count(ctx, q)
	return n, first, took, int(failed.Load()), err
}

// forEach calls fn for each system, one after the other, or all at once when parallel is set,
// and returns the first error.
func forEach(parallel bool, list []system, fn func(i int, s system) error) error {
	if !parallel {
		for i, s := range list {
			if err := fn(i, s); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	for i, s := range list {
		wg.Go(func() { errs[i] = fn(i, s) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
