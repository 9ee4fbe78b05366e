package stampede_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// versioned is a source whose every key reads the current version, and that counts loads per
// key.
type versioned struct {
	mu      sync.Mutex
	version string
	loads   map[string]int
	gate    chan struct{} // when set, loads wait for it to close
}

func (s *versioned) load(ctx context.Context, key string) (string, error) {
	s.mu.Lock()
	s.loads[key]++
	v, gate := s.version, s.gate
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return v + ":" + key, nil
}

func (s *versioned) set(version string, gate chan struct{}) {
	s.mu.Lock()
	s.version, s.gate = version, gate
	clear(s.loads)
	s.mu.Unlock()
}

// TestInvalidateAllFleet: after InvalidateAll on one of 8 instances, every instance goes on
// serving every key at once (nobody waits for a load, here held until the end), each key
// reloads once fleet-wide, and then every instance serves the new values.
func TestInvalidateAllFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const instances, keys = 8, 400
		caches := fleet[string](t, redistest.Mini(t), instances, stampede.WithTTL(time.Hour),
			stampede.WithStaleWhileRevalidate(time.Minute), stampede.WithEarlyRefresh(0))
		src := &versioned{version: "v1", loads: map[string]int{}}
		key := func(i int) string { return fmt.Sprintf("k%d", i) }
		for _, c := range caches {
			for i := range keys {
				v, err := c.Get(ctx, key(i), src.load)
				require.NoError(t, err)
				require.Equal(t, "v1:"+key(i), v)
			}
		}
		synctest.Wait()

		gate := make(chan struct{})
		src.set("v2", gate)
		time.Sleep(time.Millisecond) // values are dated in milliseconds
		require.NoError(t, caches[3].InvalidateAll(ctx))
		synctest.Wait() // the message reaches every instance
		time.Sleep(time.Millisecond)
		start := time.Now()
		for _, c := range caches {
			for i := range keys {
				v, err := c.Get(ctx, key(i), src.load)
				require.NoError(t, err)
				require.Equal(t, "v1:"+key(i), v, "the old value, served at once")
			}
		}
		require.Zero(t, time.Since(start), "no read waited (the fake clock did not move)")
		time.Sleep(time.Millisecond) // the refreshes load after the call's millisecond
		close(gate)
		synctest.Wait()

		// Refreshes skipped while the workers were busy start on later reads.
		for round := 0; ; round++ {
			stale := 0
			for _, c := range caches {
				for i := range keys {
					v, err := c.Get(ctx, key(i), src.load)
					require.NoError(t, err)
					if v != "v2:"+key(i) {
						stale++
					}
				}
			}
			synctest.Wait()
			if stale == 0 {
				break
			}
			require.Less(t, round, 100, "%d reads still stale", stale)
		}
		src.mu.Lock()
		defer src.mu.Unlock()
		require.Len(t, src.loads, keys)
		for k, n := range src.loads {
			require.Equal(t, 1, n, "loads of %s", k)
		}
	})
}

// TestInvalidateAllFencesLoadsInFlight: a load that began before InvalidateAll returns to its
// callers but does not write what it read; the next read loads the new value.
func TestInvalidateAllFencesLoadsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 2, stampede.WithTTL(time.Hour), stampede.WithEarlyRefresh(0))
		src := &versioned{version: "v1", loads: map[string]int{}, gate: make(chan struct{})}
		done := make(chan string)
		go func() {
			v, err := caches[0].Get(ctx, "k", src.load)
			require.NoError(t, err)
			done <- v
		}()
		synctest.Wait() // the load read v1 and waits
		time.Sleep(time.Millisecond)
		require.NoError(t, caches[1].InvalidateAll(ctx))
		synctest.Wait()
		time.Sleep(time.Millisecond)
		gate := src.gate
		src.set("v2", nil)
		close(gate)
		require.Equal(t, "v1:k", <-done, "its caller asked before the call")
		synctest.Wait()
		for _, c := range caches {
			v, err := c.Get(ctx, "k", src.load)
			require.NoError(t, err)
			require.Equal(t, "v2:k", v, "the older load wrote nothing")
		}
	})
}

// TestInvalidateAllReachesLateInstances: an instance that starts after InvalidateAll, or
// missed its message, learns of it from Redis.
func TestInvalidateAllReachesLateInstances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		opts := []stampede.Option{stampede.WithTTL(time.Hour), stampede.WithEarlyRefresh(0),
			stampede.WithStaleWhileRevalidate(time.Minute), stampede.WithoutL1()}
		first := one[string](t, m, opts...)
		src := &versioned{version: "v1", loads: map[string]int{}}
		_, err := first.Get(ctx, "k", src.load)
		require.NoError(t, err)
		time.Sleep(time.Millisecond)
		require.NoError(t, first.InvalidateAll(ctx))
		src.set("v2", nil)
		time.Sleep(time.Millisecond)

		late := one[string](t, m, opts...)
		synctest.Wait() // its first look at Redis
		v, err := late.Get(ctx, "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v1:k", v, "served stale")
		synctest.Wait()
		v, err = late.Get(ctx, "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v2:k", v, "refreshed once: %+v", late.Stats())
		require.Equal(t, 1, src.loads["k"])
	})
}
