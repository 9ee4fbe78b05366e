package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// timeline is when the events of one strategy's replay happen.
type timeline struct {
	start      time.Time // background traffic begins
	update     time.Time // t0: the profile update
	burstStart time.Time // the viral burst on the hot key begins...
	burstEnd   time.Time // ...and ends
	end        time.Time // background traffic ends
}

func newTimeline(start time.Time, cfg *config) timeline {
	t0 := start.Add(cfg.Lead)
	burst := t0.Add(cfg.BurstAfter)
	return timeline{
		start:      start,
		update:     t0,
		burstStart: burst,
		burstEnd:   burst.Add(cfg.Duration),
		end:        burst.Add(cfg.Duration + cfg.Tail),
	}
}

// A sample is the outcome of one request.
type sample struct {
	at      time.Time     // when it began
	took    time.Duration // until it returned, with a value or an error
	hot     bool          // it asked for the hot key
	outcome outcome
	version int64 // of the profile it returned
}

type outcome int

const (
	ok       outcome = iota
	timedOut         // its deadline passed
	failed           // any other error
)

func classify(err error) outcome {
	switch {
	case err == nil:
		return ok
	case errors.Is(err, context.DeadlineExceeded):
		return timedOut
	}
	return failed
}

// recorder collects the samples of a replay. It is safe for concurrent use.
type recorder struct {
	requests atomic.Int64 // returned so far
	timeouts atomic.Int64

	mu      sync.Mutex
	samples []sample // guarded by mu
}

func (r *recorder) add(s sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
	r.requests.Add(1)
	if s.outcome == timedOut {
		r.timeouts.Add(1)
	}
}

// update is what the write path did at t0.
type update struct {
	done    time.Time // when it returned: later requests should see version
	version int64     // the profile's version after it
}

// replay runs the timeline of one strategy on a fleet of cfg.Instances instances, in a
// namespace of its own for the round, and returns what it measured. status is called every
// 200 ms while it runs.
func replay(ctx context.Context, cfg *config, b *backends, s strategy, round int, status func(string)) (*result, error) {
	ns := b.namespace(s.Slug, round)
	db := newDatabase(b.src)
	f, err := openFleet(b, s, ns, db, cfg)
	if err != nil {
		return nil, err
	}
	defer func() { _ = b.clean(context.WithoutCancel(ctx), ns) }()
	defer f.close()
	if err := f.warm(ctx, db, cfg.Keys); err != nil {
		return nil, fmt.Errorf("%s: warming the cache: %w", s.Name, err)
	}
	before := f.counts()

	// The incident's requests read the hot key, and its write path deletes it; the timeline's
	// read the post's keys, and its write path deletes them all. Background traffic reads the
	// other keys.
	//
	// The incident's write path runs on the first instance. The timeline's runs on an instance
	// of its own, the write service's: on a reader's, its 51 deletes would queue behind the
	// burst's reads for that instance's Redis connections (the per-key baseline holds them all),
	// and would end seconds late. It deletes the 51 keys in one call (DEL of them all,
	// DeleteMany, InvalidateMany).
	hot, others, writer := []string{hotKey}, 1, f.instances[0]
	if cfg.Scenario == scenarioTimeline {
		hot, others = postKeys(), len(postKeys())
		w, err := f.open(b, s, ns, db, cfg)
		if err != nil {
			return nil, err
		}
		writer = w
	}
	tl := newTimeline(time.Now(), cfg)
	rec := &recorder{}
	var requests, pacers sync.WaitGroup
	fire := func(inst instance, key string, isHot bool) {
		requests.Go(func() {
			start := time.Now()
			rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
			var version int64
			var err error
			if isHot && len(hot) > 1 {
				version, err = renderTimeline(rctx, inst, hot)
			} else {
				var p profile
				p, err = inst.Get(rctx, key)
				version = p.Version
			}
			cancel()
			rec.add(sample{at: start, took: time.Since(start), hot: isHot, outcome: classify(err), version: version})
		})
	}
	pacers.Go(func() {
		pace(ctx, tl.start, tl.end, cfg.Background, func(i int) {
			fire(f.instances[i%len(f.instances)], keyName(others+rand.IntN(cfg.Keys-others)), false)
		})
	})
	pacers.Go(func() {
		pace(ctx, tl.burstStart, tl.burstEnd, cfg.Rate, func(i int) {
			fire(f.instances[i%len(f.instances)], hotKey, true)
		})
	})
	stop := watch(tl, rec, db.log, status)
	upd, err := writePath(ctx, db, writer, tl.update, hot)
	pacers.Wait()
	requests.Wait()
	stop()
	if err != nil {
		return nil, fmt.Errorf("%s: the profile update: %w", s.Name, err)
	}
	after := f.counts()
	f.close() // ends background refreshes, so the log holds every query they sent
	return summarize(s, cfg, tl, upd, rec.samples, db.log.all(), after.minus(before)), nil
}

// watch calls status every 200 ms with the replay's progress, until stop is called.
func watch(tl timeline, rec *recorder, log *queryLog, status func(string)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		total := tl.end.Sub(tl.start)
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			status(fmt.Sprintf("%4.1fs / %.1fs   requests %6d   queries %5d   timeouts %5d",
				time.Since(tl.start).Seconds(), total.Seconds(), rec.requests.Load(), log.count(), rec.timeouts.Load()))
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// pace calls fire(0), fire(1), ... at rate calls per second, evenly, from `from` to `to`. It
// is an open loop, as traffic from users is: a call is made on time whether or not earlier
// ones returned.
func pace(ctx context.Context, from, to time.Time, rate float64, fire func(i int)) {
	total := int(to.Sub(from).Seconds() * rate)
	if total <= 0 || !sleepUntil(ctx, from) {
		return
	}
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for sent := 0; sent < total; {
		due := min(total, 1+int(time.Since(from).Seconds()*rate))
		for ; sent < due; sent++ {
			fire(sent)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sleepUntil waits for the time t; it returns false if ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// A fleet is the instances of the service in one replay, each with its own Redis client.
type fleet struct {
	instances []instance
	closers   []func() error // of the instances, then of their clients
	opened    int            // instances among closers
	closeOnce sync.Once
}

func openFleet(b *backends, s strategy, ns string, db *database, cfg *config) (*fleet, error) {
	f := &fleet{}
	for range cfg.Instances {
		inst, err := f.open(b, s, ns, db, cfg)
		if err != nil {
			f.close()
			return nil, err
		}
		f.instances = append(f.instances, inst)
	}
	return f, nil
}

// open opens an instance of s with a client of its own, which close closes, after every
// instance.
func (f *fleet) open(b *backends, s strategy, ns string, db *database, cfg *config) (instance, error) {
	c := b.client()
	inst, err := s.open(c, ns, db, cfg)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("%s: %w", s.Name, err)
	}
	f.closers = append(slices.Insert(f.closers, f.opened, inst.Close), c.Close)
	f.opened++
	return inst, nil
}

// warm fills the cache with every profile, through the first instance, as a service that has
// run for a while has it; then every instance reads the hot key once, which puts it in the
// L1s of the instances that have one.
//
// Warming is the replay's setup, not what it measures: a call that fails is tried again, up
// to three times, so that a busy moment of the machine (a Redis call beyond its deadline, on
// a loaded machine running the embedded Redis under the race detector) does not end the
// replay.
func (f *fleet) warm(ctx context.Context, db *database, keys int) error {
	ids := make([]string, keys)
	for i := range ids {
		ids[i] = keyName(i)
	}
	rows, err := db.src.rows(ctx, ids)
	if err != nil {
		return err
	}
	if len(rows) != keys {
		return fmt.Errorf("the database has %d of the %d profiles", len(rows), keys)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, id := range ids {
		g.Go(func() error {
			return retry(gctx, func() error { return f.instances[0].Warm(gctx, rows[id]) })
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, inst := range f.instances {
		if err := retry(ctx, func() error { _, err := inst.Get(ctx, hotKey); return err }); err != nil {
			return err
		}
	}
	return nil
}

// retry calls call until it succeeds, three times at most, while ctx lasts, and returns its
// last error.
func retry(ctx context.Context, call func() error) error {
	var err error
	for range 3 {
		if err = call(); err == nil || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// writePath waits for at, then runs the write path: the database's update of the hot profile,
// then the strategy's invalidation of keys, in one call, from writer.
func writePath(ctx context.Context, db *database, writer instance, at time.Time, keys []string) (update, error) {
	if !sleepUntil(ctx, at) {
		return update{}, ctx.Err()
	}
	v, err := db.src.update(ctx, hotKey)
	if err != nil {
		return update{}, err
	}
	if len(keys) == 1 {
		err = writer.Invalidate(ctx, keys[0])
	} else {
		err = writer.InvalidateMany(ctx, keys)
	}
	if err != nil {
		return update{}, err
	}
	return update{done: time.Now(), version: v}, nil
}

// counts adds up the hits and misses of the instances.
func (f *fleet) counts() counts {
	var c counts
	for _, inst := range f.instances {
		c = c.plus(inst.Counts())
	}
	return c
}

// close closes the instances and their clients, once.
func (f *fleet) close() {
	f.closeOnce.Do(func() {
		for _, c := range f.closers {
			_ = c()
		}
	})
}
