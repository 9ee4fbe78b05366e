package stampede_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// The integration tests run against the Redis in STAMPEDE_REDIS_ADDR and the PostgreSQL in
// STAMPEDE_POSTGRES_URL, and skip without them (fail with STAMPEDE_REQUIRE_INTEGRATION=1).

// profiles is a PostgreSQL table of profiles whose lookup costs latency (pg_sleep), and which
// logs every lookup in the database, so that tests count the queries the database really ran.
type profiles struct {
	pool    *pgxpool.Pool
	run     string // tags this test's lookups in the log
	latency time.Duration

	mu        sync.Mutex
	loadStart time.Time // when the last lookup began
	loadEnd   time.Time // when the last lookup returned
}

func newProfiles(t *testing.T, latency time.Duration) *profiles {
	t.Helper()
	pool, err := pgxpool.New(ctx, redistest.PostgresURL(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS stampede_profiles (id text PRIMARY KEY, name text NOT NULL);
		CREATE TABLE IF NOT EXISTS stampede_lookups (run text NOT NULL, id text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
		INSERT INTO stampede_profiles VALUES ('user:celeb', 'Celeb') ON CONFLICT (id) DO NOTHING;`)
	require.NoError(t, err)
	return &profiles{pool: pool, run: redistest.Namespace(t), latency: latency}
}

func (p *profiles) load(ctx context.Context, id string) (string, error) {
	p.mu.Lock()
	p.loadStart = time.Now()
	p.mu.Unlock()
	var name string
	err := p.pool.QueryRow(ctx, `
		WITH logged AS (INSERT INTO stampede_lookups (run, id) VALUES ($1, $2))
		SELECT name FROM stampede_profiles, pg_sleep($3::float8) WHERE id = $2`,
		p.run, id, p.latency.Seconds()).Scan(&name)
	p.mu.Lock()
	p.loadEnd = time.Now()
	p.mu.Unlock()
	return name, err
}

// queries returns how many lookups the database ran for this test.
func (p *profiles) queries(t *testing.T) int {
	var n int
	require.NoError(t, p.pool.QueryRow(ctx, `SELECT count(*) FROM stampede_lookups WHERE run = $1`, p.run).Scan(&n))
	return n
}

// realFleet starts n caches on the real Redis, each with its own client, as n instances.
func realFleet(t *testing.T, n int, opts ...stampede.Option) []*stampede.Cache[string] {
	t.Helper()
	addr := redistest.Addr(t)
	opts = append([]stampede.Option{stampede.WithNamespace(redistest.Namespace(t))}, opts...)
	caches := make([]*stampede.Cache[string], n)
	for i := range caches {
		client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = client.Close() })
		c, err := stampede.New[string](client, opts...)
		require.NoError(t, err)
		require.True(t, stampede.Subscribed(c))
		t.Cleanup(func() { _ = c.Close() })
		caches[i] = c
	}
	return caches
}

// TestIntegrationStampede is the incident on real services: 2,000 callers on 8 instances read a
// just-deleted key whose lookup takes 50 ms. The database runs one query with Lease, one per
// instance with Singleflight, and waiters are notified as soon as the load is written.
func TestIntegrationStampede(t *testing.T) {
	for _, tt := range []struct {
		strategy stampede.Strategy
		queries  int
	}{{stampede.Lease, 1}, {stampede.Singleflight, 8}} {
		t.Run(tt.strategy.String(), func(t *testing.T) {
			db := newProfiles(t, 50*time.Millisecond)
			require.NoError(t, db.pool.Ping(ctx)) // a connection is ready, as in a running service
			caches := realFleet(t, 8, stampede.WithStrategy(tt.strategy))
			for _, c := range caches { // connections are open, as in a running service
				_, err := c.Get(ctx, "warm-up", func(context.Context, string) (string, error) { return "", nil })
				require.NoError(t, err)
			}
			require.NoError(t, caches[0].Delete(ctx, "user:celeb"))

			const callers = 2000
			done := make([]time.Time, callers)
			values, errs, start := getAllTimed(ctx, caches, callers, "user:celeb", db.load, done)
			for i := range values {
				require.NoError(t, errs[i])
				require.Equal(t, "Celeb", values[i])
			}
			require.Equal(t, tt.queries, db.queries(t), "queries the database ran")

			// How long after the (last) load ended each caller got its value.
			lags := make([]time.Duration, callers)
			for i := range done {
				lags[i] = max(done[i].Sub(db.loadEnd), 0)
			}
			slices.Sort(lags)
			p50, p99, worst := lags[callers/2], lags[callers*99/100], lags[callers-1]
			latency := make([]time.Duration, callers)
			for i := range done {
				latency[i] = done[i].Sub(start)
			}
			slices.Sort(latency)
			t.Logf("%s: %d queries; %d callers got the value %v (p50) %v (p99) %v (max) after the load ended; "+
				"latency %v (p50) %v (p99) %v (max); the load ran from %v to %v",
				tt.strategy, db.queries(t), callers, p50, p99, worst,
				latency[callers/2], latency[callers*99/100], latency[callers-1],
				db.loadStart.Sub(start), db.loadEnd.Sub(start))
			bound := 20 * time.Millisecond // a polling waiter would take 100 ms
			if raceEnabled {
				bound = 50 * time.Millisecond
			}
			require.Less(t, p99, bound, "waiters are notified, not polling")
		})
	}
}

// getAllTimed is getAll that also records when each caller returned, and returns when they
// were released (after their goroutines were created).
func getAllTimed(ctx context.Context, caches []*stampede.Cache[string], n int, key string, load stampede.Loader[string], done []time.Time) ([]string, []error, time.Time) {
	values, errs := make([]string, n), make([]error, n)
	var wg, ready sync.WaitGroup
	release := make(chan struct{})
	for i := range n {
		ready.Add(1)
		wg.Go(func() {
			ready.Done()
			<-release
			values[i], errs[i] = caches[i%len(caches)].Get(ctx, key, load)
			done[i] = time.Now()
		})
	}
	ready.Wait()
	start := time.Now()
	close(release)
	wg.Wait()
	return values, errs, start
}

// TestIntegrationWrites runs the write path on real Redis: write-through, soft and hard
// invalidation and Refresh, seen from another instance.
func TestIntegrationWrites(t *testing.T) {
	caches := realFleet(t, 2)
	a, b := caches[0], caches[1]
	load := func(v string) stampede.Loader[string] {
		return func(context.Context, string) (string, error) { return v, nil }
	}
	get := func(c *stampede.Cache[string], l stampede.Loader[string]) string {
		t.Helper()
		v, err := c.Get(ctx, "k", l)
		require.NoError(t, err)
		return v
	}
	require.Equal(t, "v1", get(a, load("v1")))
	require.Equal(t, "v1", get(b, load("unused")))

	require.NoError(t, a.Set(ctx, "k", "v2"))
	require.Eventually(t, func() bool { return get(b, load("unused")) == "v2" }, time.Second, time.Millisecond)

	require.NoError(t, a.Invalidate(ctx, "k"))
	require.Eventually(t, func() bool { return get(b, load("v3")) == "v3" }, time.Second, time.Millisecond,
		"a stale read starts one refresh, whose value follows")

	require.NoError(t, a.Delete(ctx, "k"))
	require.Eventually(t, func() bool { return get(b, load("v4")) == "v4" }, time.Second, time.Millisecond)

	v, err := a.Refresh(ctx, "k", load("v5"))
	require.NoError(t, err)
	require.Equal(t, "v5", v)
	require.Eventually(t, func() bool { return get(b, load("unused")) == "v5" }, time.Second, time.Millisecond)
}
