package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede"
)

// The GetMany scenarios: f, a cold fleet reading random subsets of a just-deleted key set; g, a
// hot batch of keys read together across their expiries. Each runs stampede's GetMany beside
// what a service writes without it: one MGET, one batch query for the misses, one pipelined SET.

// batchLoader loads many keys with one query and counts the calls and the keys each returned.
type batchLoader struct {
	tag   string
	load  func(ctx context.Context, keys []string) (map[string]profile, error)
	calls atomic.Int64
	rows  atomic.Int64
}

// batchOf returns a BatchLoader of e's database, counted under tag: with PostgreSQL one query
// (WHERE id = ANY($1), with pg_sleep for the query's cost) that logs each row it returns in
// bench_queries; else a Go sleep.
func batchOf(e *env, cfg *config, tag string) *batchLoader {
	b := &batchLoader{tag: e.run + ":" + tag}
	pg, ok := e.src.(*pgSource)
	b.load = func(ctx context.Context, keys []string) (map[string]profile, error) {
		b.calls.Add(1)
		m := make(map[string]profile, len(keys))
		if !ok {
			t := time.NewTimer(cfg.Query)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			for _, k := range keys {
				m[k] = profileOf(k)
			}
			b.rows.Add(int64(len(keys)))
			return m, nil
		}
		rows, err := pg.pool.Query(ctx, `
			WITH found AS (SELECT id, name, email, followers, verified FROM bench_profiles WHERE id = ANY($2)),
			     logged AS (INSERT INTO bench_queries (tag, key) SELECT $1, id FROM found)
			SELECT f.id, f.name, f.email, f.followers, f.verified
			FROM pg_sleep($3::float8) AS cost CROSS JOIN LATERAL (SELECT * FROM found) AS f`,
			b.tag, keys, cfg.Query.Seconds())
		if err != nil {
			return nil, fmt.Errorf("postgres: batch query: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var p profile
			if err := rows.Scan(&p.ID, &p.Name, &p.Email, &p.Followers, &p.Verified); err != nil {
				return nil, err
			}
			m[p.ID] = p
		}
		b.rows.Add(int64(len(m)))
		return m, rows.Err()
	}
	return b
}

// rowsPerKey returns how many times the database returned each key for b (PostgreSQL's count);
// nil without PostgreSQL.
func (b *batchLoader) rowsPerKey(ctx context.Context, e *env) (map[string]int, error) {
	pg, ok := e.src.(*pgSource)
	if !ok {
		return nil, nil
	}
	rows, err := pg.pool.Query(ctx, `SELECT key, count(*) FROM bench_queries WHERE tag = $1 GROUP BY key`, b.tag)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := make(map[string]int)
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			return nil, err
		}
		m[k] = n
	}
	return m, rows.Err()
}

// seedBatchRows inserts the profiles of keys into bench_profiles, with PostgreSQL.
func seedBatchRows(ctx context.Context, e *env, keys []string) error {
	pg, ok := e.src.(*pgSource)
	if !ok {
		return nil
	}
	p := profileOf("")
	_, err := pg.pool.Exec(ctx, `INSERT INTO bench_profiles SELECT k, $2, $3, $4, $5 FROM unnest($1::text[]) AS k
		ON CONFLICT (id) DO NOTHING`, keys, p.Name, p.Email, p.Followers, p.Verified)
	return err
}

// manyReader is a contender of the GetMany scenarios: one instance's read of many keys.
type manyReader func(ctx context.Context, keys []string) (int, error)

// rawMany is the baseline: MGET; for the misses one batch query and a pipelined SET of each.
func rawMany(client *redis.Client, prefix string, ttl time.Duration, load *batchLoader) manyReader {
	return func(ctx context.Context, keys []string) (int, error) {
		rks := make([]string, len(keys))
		for i, k := range keys {
			rks[i] = prefix + k
		}
		vals, err := client.MGet(ctx, rks...).Result()
		if err != nil {
			return 0, err
		}
		found := 0
		var missing []string
		for i, v := range vals {
			s, ok := v.(string)
			if !ok {
				missing = append(missing, keys[i])
				continue
			}
			var p profile
			if err := json.Unmarshal([]byte(s), &p); err != nil {
				return 0, err
			}
			found++
		}
		if len(missing) == 0 {
			return found, nil
		}
		m, err := load.load(ctx, missing)
		if err != nil {
			return 0, err
		}
		_, err = client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for k, v := range m {
				b, _ := json.Marshal(v)
				p.Set(ctx, prefix+k, b, ttl)
			}
			return nil
		})
		return found + len(m), err
	}
}

// batchKeyset returns n keys of the scenario.
func batchKeyset(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("item:%d", i)
	}
	return keys
}

type coldWave struct {
	rows, dups int // rows the database returned; of which for a key returned before in the wave
	calls      int // loader calls
	maxCalls   int // of the instance that made the most
	bound      int // sum over the instances of ceil(keys it loaded / max batch)
	errors     int // failed or short reads
	took       latencies
}

// runGetManyCold is scenario f: cfg.Instances instances, cfg.BatchGoroutines goroutines each,
// call GetMany on random cfg.BatchSize-key subsets of cfg.BatchKeys keys just deleted, released
// together, for cfg.Waves waves; the BatchLoader is one query. It reports the rows the database
// returned, the loader calls, errors and latencies, per contender.
func runGetManyCold(ctx context.Context, cfg *config, e *env, out io.Writer, logf func(string, ...any)) error {
	keys := batchKeyset(cfg.BatchKeys)
	if err := seedBatchRows(ctx, e, keys); err != nil {
		return err
	}
	type contender struct {
		name  string
		waves []coldWave
	}
	cs := []*contender{{name: "stampede GetMany (Lease)"}, {name: "raw go-redis: MGET, batch query of the misses, SET"}}
	for ci, cont := range cs {
		for wave := range cfg.Waves {
			ns := e.prefix("getmany", fmt.Sprint(ci), fmt.Sprint(wave))
			load := batchOf(e, cfg, fmt.Sprintf("getmany:%d:%d", ci, wave))
			readers := make([]manyReader, cfg.Instances)
			perInstance := make([]*batchLoader, cfg.Instances)
			var caches []*stampede.Cache[profile]
			for i := range readers {
				client := e.client()
				defer client.Close()
				perInstance[i] = &batchLoader{}
				counted := func(ctx context.Context, keys []string) (map[string]profile, error) {
					perInstance[i].calls.Add(1)
					m, err := load.load(ctx, keys)
					perInstance[i].rows.Add(int64(len(m)))
					return m, err
				}
				if ci == 0 {
					// The burst queues a few hundred milliseconds of Lua in Redis (the leases of every
					// instance's keys): the default Redis timeout, 250 ms, would fail calls of it.
					c, err := stampede.New[profile](client, stampede.WithNamespace(ns), stampede.WithTTL(time.Minute),
						stampede.WithMaxBatch(cfg.MaxBatch), stampede.WithRedisTimeout(time.Second))
					if err != nil {
						return err
					}
					defer c.Close()
					caches = append(caches, c)
					readers[i] = func(ctx context.Context, keys []string) (int, error) {
						m, err := c.GetMany(ctx, keys, counted)
						return len(m), err
					}
				} else {
					readers[i] = rawMany(client, ns+":", time.Minute, &batchLoader{load: counted})
				}
			}
			// The key set was there, and was just deleted.
			if ci == 0 {
				if err := caches[0].DeleteMany(ctx, keys); err != nil {
					return err
				}
			}
			time.Sleep(20 * time.Millisecond) // the deletes' messages reach every instance
			w := coldWave{}
			var mu sync.Mutex
			var wg, ready sync.WaitGroup
			release := make(chan struct{})
			for i := range cfg.Instances {
				for range cfg.BatchGoroutines {
					ready.Add(1)
					wg.Go(func() {
						subset := slices.Clone(keys)
						rand.Shuffle(len(subset), func(a, b int) { subset[a], subset[b] = subset[b], subset[a] })
						subset = subset[:cfg.BatchSize]
						rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
						defer cancel()
						ready.Done()
						<-release
						start := time.Now()
						n, err := readers[i](rctx, subset)
						took := time.Since(start)
						mu.Lock()
						w.took = append(w.took, took)
						if err != nil || n != len(subset) {
							w.errors++
						}
						mu.Unlock()
					})
				}
			}
			ready.Wait()
			close(release)
			wg.Wait()
			for _, p := range perInstance {
				n := int(p.calls.Load())
				w.calls += n
				w.maxCalls = max(w.maxCalls, n)
				w.bound += (int(p.rows.Load()) + cfg.MaxBatch - 1) / cfg.MaxBatch
			}
			w.rows = int(load.rows.Load())
			if per, err := load.rowsPerKey(ctx, e); err != nil {
				return err
			} else if per != nil {
				w.rows = 0
				for _, n := range per {
					w.rows += n
					w.dups += n - 1
				}
			}
			cont.waves = append(cont.waves, w)
			logf("  %-50s wave %d: %d rows (%d again), %d loader calls (bound %d), %d errors, p99 %s",
				cont.name, wave+1, w.rows, w.dups, w.calls, w.bound, w.errors, ms(w.took.percentile(0.99)))
			if err := e.clean(context.WithoutCancel(ctx), ns); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(out, "## f. GetMany on a cold fleet\n\n")
	fmt.Fprintf(out, "%d instances, %d goroutines each, released together, call GetMany on random %d-key subsets of "+
		"%s keys just deleted; the BatchLoader is one query: %s (WHERE id = ANY($1) with PostgreSQL). "+
		"Max batch %d; stampede with WithRedisTimeout(1s). %d wave(s), a fresh namespace each. Rows: what the database returned (again: rows of a key it had "+
		"returned before in the wave). Calls: loader calls of the fleet, and of the instance that made the most; "+
		"bound: the sum over the instances of ceil(keys it loaded / max batch).\n\n",
		cfg.Instances, cfg.BatchGoroutines, cfg.BatchSize, thousands(int64(cfg.BatchKeys)), e.src.describe(), cfg.MaxBatch, cfg.Waves)
	t := newTable("contender", "wave", "rows", "again", "calls", "most by one", "bound", "errors", "p50", "p99", "max")
	for _, c := range cs {
		for i, w := range c.waves {
			t.add(c.name, i+1, w.rows, w.dups, w.calls, w.maxCalls, w.bound, w.errors,
				ms(w.took.percentile(0.5)), ms(w.took.percentile(0.99)), ms(w.took.max()))
		}
	}
	t.write(out)
	fmt.Fprintln(out)
	return nil
}

// runGetManyHot is scenario g: cfg.HotKeys keys whose values live cfg.TTL, read together with
// GetMany cfg.Rate times a second over the instances for cfg.Duration, early refresh on. It
// reports the stalls (reads that took at least the query's latency) and the refresh calls.
func runGetManyHot(ctx context.Context, cfg *config, e *env, out io.Writer, logf func(string, ...any)) error {
	keys := batchKeyset(cfg.HotKeys)
	if err := seedBatchRows(ctx, e, keys); err != nil {
		return err
	}
	type result struct {
		name   string
		calls  int
		took   latencies
		errors int
	}
	// The window merges the refreshes the instances' GetMany calls find due within it; a batch
	// comes due as one anyway (refreshSiblings).
	window := 20 * time.Millisecond
	var results []result
	for ci, name := range []string{"stampede GetMany, early refresh, merged refreshes", "raw go-redis: MGET, batch query of the misses, SET"} {
		ns := e.prefix("getmany-hot", fmt.Sprint(ci))
		load := batchOf(e, cfg, fmt.Sprintf("getmany-hot:%d", ci))
		readers := make([]manyReader, cfg.Instances)
		for i := range readers {
			client := e.client()
			defer client.Close()
			if ci == 0 {
				c, err := stampede.New[profile](client, stampede.WithNamespace(ns), stampede.WithTTL(cfg.TTL),
					stampede.WithMaxBatch(cfg.MaxBatch), stampede.WithRefreshBatch(window, cfg.MaxBatch))
				if err != nil {
					return err
				}
				defer c.Close()
				readers[i] = func(ctx context.Context, keys []string) (int, error) {
					m, err := c.GetMany(ctx, keys, load.load)
					return len(m), err
				}
			} else {
				readers[i] = rawMany(client, ns+":", cfg.TTL, load)
			}
		}
		if _, err := readers[0](ctx, keys); err != nil { // warm: the first load is not a refresh
			return err
		}
		before := load.calls.Load()
		r := result{name: name}
		var mu sync.Mutex
		var wg sync.WaitGroup
		tick := time.NewTicker(cfg.Batch)
		perTick := max(int(cfg.Rate*cfg.Batch.Seconds()), 1)
		end := time.Now().Add(cfg.Duration)
		n := 0
		for time.Now().Before(end) {
			<-tick.C
			for range perTick {
				read := readers[n%len(readers)]
				n++
				wg.Go(func() {
					rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
					defer cancel()
					start := time.Now()
					got, err := read(rctx, keys)
					took := time.Since(start)
					mu.Lock()
					r.took = append(r.took, took)
					if err != nil || got != len(keys) {
						r.errors++
					}
					mu.Unlock()
				})
			}
		}
		tick.Stop()
		wg.Wait()
		r.calls = int(load.calls.Load() - before)
		results = append(results, r)
		logf("  %-50s %d loader calls, %d stalls, %d errors, p99 %s", name, r.calls, r.took.atLeast(cfg.Query), r.errors,
			ms(r.took.percentile(0.99)))
		if err := e.clean(context.WithoutCancel(ctx), ns); err != nil {
			return err
		}
	}
	bound := float64(cfg.Duration) / float64(cfg.TTL) * float64((cfg.HotKeys+cfg.MaxBatch-1)/cfg.MaxBatch) * 1.2
	fmt.Fprintf(out, "## g. GetMany of a hot batch across its expiries\n\n")
	fmt.Fprintf(out, "%d keys with a %v TTL, read together with GetMany %s times a second over %d instances for %v "+
		"(open loop, in batches every %v). Early refresh on (beta 1); GetMany's refreshes merged within %v, max batch %d. "+
		"Loader: %s. Stalls: reads that took at least the query's %v. Target: at most %.0f loader calls "+
		"(duration / TTL x ceil(keys / max batch) x 1.2), 0 stalls.\n\n",
		cfg.HotKeys, cfg.TTL, thousands(int64(cfg.Rate)), cfg.Instances, cfg.Duration, cfg.Batch, window, cfg.MaxBatch,
		e.src.describe(), cfg.Query, bound)
	t := newTable("contender", "loader calls", "stalls", "errors", "p50", "p99", "max")
	for _, r := range results {
		t.add(r.name, r.calls, r.took.atLeast(cfg.Query), r.errors, ms(r.took.percentile(0.5)), ms(r.took.percentile(0.99)),
			ms(r.took.max()))
	}
	t.write(out)
	fmt.Fprintln(out)
	return nil
}
