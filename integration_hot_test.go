package stampede_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// TestIntegrationHotKeyAcrossExpiry reads one hot key with a 1 s TTL from 8 instances at 2,000
// requests/s for 8 s (3 s without early refresh, which shows the stalls but asserts only that
// nothing fails), with a 50 ms loader. With early refresh no request waits for a load and
// the key is loaded about once per TTL fleet-wide; without it, every expiry stalls the readers
// of every instance while one load runs.
func TestIntegrationHotKeyAcrossExpiry(t *testing.T) {
	if testing.Short() {
		t.Skip("8 s")
	}
	const (
		instances = 8
		rate      = 2000
		ttl       = time.Second
		loadTime  = 50 * time.Millisecond
	)
	for _, early := range []bool{true, false} {
		name := map[bool]string{true: "early refresh", false: "no early refresh"}[early]
		t.Run(name, func(t *testing.T) {
			beta, duration := 0.0, 3*time.Second
			if early {
				beta, duration = 1, 8*time.Second
			}
			caches := realFleet(t, instances, stampede.WithTTL(ttl), stampede.WithEarlyRefresh(beta))
			var loads atomic.Int64
			load := func(ctx context.Context, key string) (string, error) {
				loads.Add(1)
				time.Sleep(loadTime)
				return "hot value", nil
			}
			_, err := caches[0].Get(ctx, "hot", load)
			require.NoError(t, err)
			before := statsOf(caches)

			latencies := make([]time.Duration, 0, int(duration.Seconds())*rate)
			var mu sync.Mutex
			var wg sync.WaitGroup
			var failures atomic.Int64
			// A batch of requests every 5 ms: a finer ticker cannot keep its pace.
			const every = 5 * time.Millisecond
			const batch = rate * every / time.Second
			tick := time.NewTicker(every)
			defer tick.Stop()
			for i := range int(duration/every) * int(batch) {
				if i%int(batch) == 0 {
					<-tick.C
				}
				wg.Go(func() {
					start := time.Now()
					if _, err := caches[i%instances].Get(ctx, "hot", load); err != nil {
						failures.Add(1)
					}
					d := time.Since(start)
					mu.Lock()
					latencies = append(latencies, d)
					mu.Unlock()
				})
			}
			wg.Wait()
			slices.Sort(latencies)
			n := len(latencies)
			stalls := n - sort(latencies, loadTime)
			after := statsOf(caches)
			t.Logf("%s: %d requests in %v, %d loads (%.1f per expiry), p50 %v p99 %v max %v, %d requests took >= %v, misses %d, stale served %d, early refreshes %d",
				name, n, duration, loads.Load()-1, float64(loads.Load()-1)/duration.Seconds(),
				latencies[n/2], latencies[n*99/100], latencies[n-1], stalls, loadTime,
				after.Misses-before.Misses, after.StaleServed-before.StaleServed, after.EarlyRefreshes-before.EarlyRefreshes)
			require.Zero(t, failures.Load())
			if early {
				require.Zero(t, stalls, "no request waits for a load")
				require.Less(t, latencies[n-1], loadTime)
				require.LessOrEqual(t, loads.Load()-1, int64(1.5*duration.Seconds()), "one refresher per expiry fleet-wide")
				require.Zero(t, after.Misses-before.Misses, "the hot key never misses")
			}
		})
	}
}

// sort returns how many of the sorted durations are below d.
func sort(sorted []time.Duration, d time.Duration) int {
	i, _ := slices.BinarySearch(sorted, d)
	return i
}

func statsOf(caches []*stampede.Cache[string]) stampede.Stats {
	var s stampede.Stats
	for _, c := range caches {
		x := c.Stats()
		s.L1Hits += x.L1Hits
		s.L2Hits += x.L2Hits
		s.Misses += x.Misses
		s.Loads += x.Loads
		s.StaleServed += x.StaleServed
		s.EarlyRefreshes += x.EarlyRefreshes
		s.LeaseWaits += x.LeaseWaits
	}
	return s
}

// TestIntegrationL1Coherence writes a new value on instance A 1,000 times and measures how long
// instance B, which keeps the key in its L1 for 30 s, takes to return it.
func TestIntegrationL1Coherence(t *testing.T) {
	caches := realFleet(t, 2, stampede.WithL1(1000, 30*time.Second))
	delays := coherenceDelays(t, caches[0], caches[1], 1000)
	require.Less(t, delays[990], 50*time.Millisecond)
}

// coherenceDelays writes a new value on a n times, and returns how long b, which holds the key
// in its L1 each time, took to return it, sorted.
func coherenceDelays(t *testing.T, a, b *stampede.Cache[string], n int) []time.Duration {
	t.Helper()
	unused := func(context.Context, string) (string, error) { return "", fmt.Errorf("not expected") }
	require.NoError(t, a.Set(ctx, "k", "v0"))
	delays := make([]time.Duration, 0, n)
	for i := 1; i <= n; i++ {
		want := fmt.Sprint("v", i)
		for range 2 { // the second read finds the value in B's L1
			_, err := b.Get(ctx, "k", unused)
			require.NoError(t, err)
		}
		require.True(t, stampede.InL1(b, "k"))
		start := time.Now()
		require.NoError(t, a.Set(ctx, "k", want))
		for {
			v, err := b.Get(ctx, "k", unused)
			require.NoError(t, err)
			if v == want {
				break
			}
			require.Less(t, time.Since(start), time.Second, "B still returns %q", v)
			// B's reads are L1 hits until the eviction comes, and cost Redis nothing. (A sleep here
			// would measure the timer's granularity, about a millisecond, not the eviction.)
			runtime.Gosched()
		}
		delays = append(delays, time.Since(start))
	}
	slices.Sort(delays)
	t.Logf("an update on A is visible on B after %v (p50) %v (p99) %v (max)", delays[n/2], delays[n*99/100], delays[n-1])
	return delays
}

// TestIntegrationSubscriptionKilled kills B's pub/sub connection in Redis: B subscribes again
// and empties its L1, since invalidations sent meanwhile are lost.
func TestIntegrationSubscriptionKilled(t *testing.T) {
	addr := redistest.Addr(t)
	ns := redistest.Namespace(t)
	name := strings.ReplaceAll(ns, ":", "-")
	client := redis.NewClient(&redis.Options{Addr: addr, ClientName: name, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	b, err := stampede.New[string](client, stampede.WithNamespace(ns))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	load := func(context.Context, string) (string, error) { return "v", nil }
	for range 2 {
		_, err := b.Get(ctx, "k", load)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return stampede.InL1(b, "k") }, time.Second, time.Millisecond)

	// Kill only B's subscription (other tests share this Redis): the connection with B's name
	// that is subscribed to a channel.
	admin := redistest.Real(t)
	list, err := admin.ClientList(ctx).Result()
	require.NoError(t, err)
	killed := 0
	for _, line := range strings.Split(list, "\n") {
		fields := strings.Fields(line)
		if slices.Contains(fields, "name="+name) && slices.Contains(fields, "sub=1") {
			id := strings.TrimPrefix(fields[0], "id=")
			require.NoError(t, admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err())
			killed++
		}
	}
	require.Equal(t, 1, killed, "B's subscription in CLIENT LIST:\n%s", list)
	require.Eventually(t, func() bool { return !stampede.InL1(b, "k") }, 5*time.Second, time.Millisecond,
		"the L1 is emptied once the subscription is back")
	require.Eventually(t, func() bool { return stampede.Subscribed(b) }, 5*time.Second, time.Millisecond)
}
