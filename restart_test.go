package stampede_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// TestIntegrationRestartFromOlderSnapshot: a Redis that crashes and restarts from an RDB
// snapshot brings back values (and fences) as they were at the snapshot, older than writes
// that were acknowledged after it. The caches notice the restart (a new run ID whose server
// just started) and treat every value written before it as stale: within 3 s no read serves a
// rolled-back value, and each key is loaded once, by one instance, without a stampede.
func TestIntegrationRestartFromOlderSnapshot(t *testing.T) {
	const (
		keys      = 10
		instances = 2
		settle    = 3 * time.Second // no rolled-back value served after this
		watch     = 5 * time.Second
	)
	srv := startRedis(t)
	ns := redistest.Namespace(t)
	f := faultFleet(t, srv.addr(), ns, instances, stampede.WithTTL(time.Hour), stampede.WithL1(1000, time.Hour))
	var mu sync.Mutex
	version := map[string]int{}
	loads := map[string]int{}
	var counting atomic.Bool
	load := func(_ context.Context, key string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if counting.Load() {
			loads[key]++
		}
		return fmt.Sprint("v", version[key]), nil
	}
	write := func(v int) {
		for i := range keys {
			key := fmt.Sprint("k", i)
			mu.Lock()
			version[key] = v
			mu.Unlock()
			require.NoError(t, f.caches[i%instances].Set(ctx, key, fmt.Sprint("v", v)))
		}
	}
	write(1)
	admin := faultClient(srv.addr(), "")
	defer admin.Close()
	require.NoError(t, admin.Save(ctx).Err())
	write(2) // acknowledged, and lost in the restart
	for _, c := range f.caches {
		for i := range keys {
			v, err := c.Get(ctx, fmt.Sprint("k", i), load)
			require.NoError(t, err)
			require.Equal(t, "v2", v)
		}
	}

	srv.kill()
	srv.start() // from the snapshot: v1 everywhere
	restarted := time.Now()
	got, err := admin.Get(ctx, ns+":{k0}").Bytes()
	require.NoError(t, err, "the snapshot brought the value back")
	require.Contains(t, string(got), `"v1"`)
	counting.Store(true)

	var reads, rolledBack, late atomic.Int64
	var worst atomic.Int64
	var wg sync.WaitGroup
	for _, c := range f.caches {
		wg.Go(func() {
			for time.Since(restarted) < watch {
				for i := range keys {
					v, err := c.Get(ctx, fmt.Sprint("k", i), load)
					reads.Add(1)
					if err == nil && v == "v1" {
						rolledBack.Add(1)
						after := time.Since(restarted)
						if after > time.Duration(worst.Load()) {
							worst.Store(int64(after))
						}
						if after >= settle {
							late.Add(1)
						}
					}
				}
				time.Sleep(5 * time.Millisecond) // a reader's pace, not a wait for a condition
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("after the restart: %d reads, %d served the rolled-back value, the last %v after the restart, %d of them after %v; loads per key %v",
		reads.Load(), rolledBack.Load(), time.Duration(worst.Load()).Round(time.Millisecond), late.Load(), settle, loads)
	require.Zero(t, late.Load(), "no read serves a rolled-back value %v after the restart", settle)
	for i := range keys {
		require.Equal(t, 1, loads[fmt.Sprint("k", i)], "each key loads once: %v", loads)
	}
}
