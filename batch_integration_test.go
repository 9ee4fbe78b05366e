package stampede_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// items is a PostgreSQL table read by a batch query (WHERE id = ANY($1)) that logs every row
// it returns, so that tests count the rows the database really returned.
type items struct {
	pool *pgxpool.Pool
	run  string
}

func newItems(t *testing.T, n int) *items {
	t.Helper()
	pool, err := pgxpool.New(ctx, redistest.PostgresURL(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS stampede_items (id text PRIMARY KEY, name text NOT NULL);
		CREATE TABLE IF NOT EXISTS stampede_item_reads (run text NOT NULL, id text NOT NULL);`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO stampede_items
		SELECT 'item:' || g, 'name ' || g FROM generate_series(0, $1::int - 1) g ON CONFLICT (id) DO NOTHING`, n)
	require.NoError(t, err)
	return &items{pool: pool, run: redistest.Namespace(t)}
}

// load is the BatchLoader: one query for every key.
func (s *items) load(ctx context.Context, keys []string) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `
		WITH found AS (SELECT id, name FROM stampede_items WHERE id = ANY($1)),
		     logged AS (INSERT INTO stampede_item_reads (run, id) SELECT $2, id FROM found)
		SELECT id, name FROM found`, keys, s.run)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	m := make(map[string]string, len(keys))
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			return nil, err
		}
		m[id] = name
	}
	return m, rows.Err()
}

// reads returns how many times the database returned each row for this test.
func (s *items) reads(t *testing.T) map[string]int {
	rows, err := s.pool.Query(ctx, `SELECT id, count(*) FROM stampede_item_reads WHERE run = $1 GROUP BY id`, s.run)
	require.NoError(t, err)
	defer rows.Close()
	m := make(map[string]int)
	for rows.Next() {
		var id string
		var n int
		require.NoError(t, rows.Scan(&id, &n))
		m[id] = n
	}
	return m
}

// TestIntegrationGetManyFleet: 4 instances, 8 goroutines each, read overlapping 25-key subsets of
// 200 just-deleted keys (and one that does not exist) through one PostgreSQL query per batch:
// every row is returned once fleet-wide, each instance calls its BatchLoader at most once per
// chunk of the keys it won, and nobody gets an error.
func TestIntegrationGetManyFleet(t *testing.T) {
	const n, perCall, goroutines = 200, 25, 8
	db := newItems(t, n)
	caches := realFleet(t, 4, stampede.WithMaxBatch(10))
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("item:%d", i)
	}
	require.NoError(t, caches[0].DeleteMany(ctx, keys))
	var calls [4]atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4*goroutines)
	for ci, c := range caches {
		load := func(ctx context.Context, keys []string) (map[string]string, error) {
			calls[ci].Add(1)
			return db.load(ctx, keys)
		}
		for g := range goroutines {
			wg.Go(func() {
				start := (ci*goroutines + g) * n / (4 * goroutines)
				subset := append([]string{"item:missing"}, keys[start:min(start+perCall, n)]...)
				subset = append(subset, keys[(start+n/2)%n:min((start+n/2)%n+perCall, n)]...)
				got, err := c.GetMany(ctx, subset, load)
				if err == nil {
					for _, k := range subset[1:] {
						if got[k] == "" {
							err = fmt.Errorf("%s missing", k)
						}
					}
					if _, ok := got["item:missing"]; ok {
						err = fmt.Errorf("item:missing found")
					}
				}
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for id, reads := range db.reads(t) {
		require.Equal(t, 1, reads, "row %s returned once fleet-wide", id)
	}
	var loads, total uint64
	for ci, c := range caches {
		st := c.Stats()
		loads += st.Loads
		total += uint64(calls[ci].Load())
		// Each goroutine's batch splits into chunks of 10 of the keys it won (at most 51).
		require.LessOrEqual(t, calls[ci].Load(), int64(goroutines*6), "instance %d", ci)
	}
	t.Logf("%d keys loaded in %d BatchLoader calls by 4 instances", loads, total)
}

// TestIntegrationGetManyCluster: on the 3-master cluster, GetMany reads with one MGET per slot,
// leases and fills per slot, and SetMany, InvalidateMany and DeleteMany write per slot; each key
// is loaded once by 2 instances.
func TestIntegrationGetManyCluster(t *testing.T) {
	ns := redistest.Namespace(t)
	var caches []*stampede.Cache[string]
	for range 2 {
		c, err := stampede.New[string](redistest.Cluster(t), stampede.WithNamespace(ns))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		caches = append(caches, c)
	}
	src := newBatchSource()
	keys := append(keysN("k", 40), "{tag}a", "{tag}b", "}odd")
	var wg sync.WaitGroup
	got := make([]map[string]string, 2)
	errs := make([]error, 2)
	for i, c := range caches {
		wg.Go(func() { got[i], errs[i] = c.GetMany(ctx, keys, src.load) })
	}
	wg.Wait()
	for i := range caches {
		require.NoError(t, errs[i])
		require.Len(t, got[i], len(keys))
	}
	_, loaded := src.stats()
	for _, k := range keys {
		require.Equal(t, 1, loaded[k], k)
	}
	again, err := caches[1].GetMany(ctx, keys, src.load)
	require.NoError(t, err)
	require.Len(t, again, len(keys))

	values := map[string]string{}
	for _, k := range keys {
		values[k] = "set:" + k
	}
	require.NoError(t, caches[0].SetMany(ctx, values))
	require.Eventually(t, func() bool {
		v, err := caches[1].GetMany(ctx, keys[:3], src.load)
		return err == nil && v[keys[2]] == "set:"+keys[2]
	}, 2*time.Second, 5*time.Millisecond)
	require.NoError(t, caches[0].InvalidateMany(ctx, keys))
	require.NoError(t, caches[0].DeleteMany(ctx, keys))
	src.mu.Lock()
	src.version = "v2"
	src.mu.Unlock()
	// Another instance's L1 follows the delete within the eviction window's bound.
	require.Eventually(t, func() bool {
		again, err = caches[1].GetMany(ctx, keys, src.load)
		return err == nil && again["k039"] == "v2:k039"
	}, 2*time.Second, 5*time.Millisecond)
}

// TestIntegrationGetManyRealRedis: GetMany against the real Redis's Lua (the batch scripts), with
// replicated keys, a fenced fill and the not-found.
func TestIntegrationGetManyRealRedis(t *testing.T) {
	caches := realFleet(t, 2, stampede.WithReplicas(2))
	src := newBatchSource()
	src.missing["gone"] = true
	keys := append(keysN("r", 30), "gone")
	got, err := caches[0].GetMany(ctx, keys, src.load)
	require.NoError(t, err)
	require.Len(t, got, 30)
	got, err = caches[1].GetMany(ctx, keys, src.load)
	require.NoError(t, err)
	require.Len(t, got, 30)
	require.Positive(t, caches[1].Stats().ReplicaHits, "replicas serve the reads")
	calls, _ := src.stats()
	require.Equal(t, 1, calls)
}
