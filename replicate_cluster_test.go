package stampede_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// clusterMasters returns the addresses of the test cluster's masters, or skips.
func clusterMasters(t *testing.T) []string {
	t.Helper()
	addrs := os.Getenv("STAMPEDE_REDIS_CLUSTER_ADDRS")
	if addrs == "" {
		if redistest.Required() {
			t.Fatal("STAMPEDE_REDIS_CLUSTER_ADDRS is not set and STAMPEDE_REQUIRE_INTEGRATION=1")
		}
		t.Skip("STAMPEDE_REDIS_CLUSTER_ADDRS is not set")
	}
	return strings.Split(addrs, ",")
}

var getCalls = regexp.MustCompile(`cmdstat_get:calls=(\d+)`)

// getsPerNode returns how many GETs each master has served.
func getsPerNode(t *testing.T, masters []string) []int {
	t.Helper()
	counts := make([]int, len(masters))
	for i, addr := range masters {
		c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		info, err := c.Info(context.Background(), "commandstats").Result()
		_ = c.Close()
		require.NoError(t, err)
		if m := getCalls.FindStringSubmatch(info); m != nil {
			counts[i], _ = strconv.Atoi(m[1])
		}
	}
	return counts
}

// TestClusterReplicasSpreadReads reads a hot key 30,000 times from 8 instances with the L1 off:
// with 3 replicas the three masters share the GETs; without, the key's master serves them all.
func TestClusterReplicasSpreadReads(t *testing.T) {
	masters := clusterMasters(t)
	for _, replicas := range []int{3, 0} {
		t.Run(fmt.Sprint("replicas=", replicas), func(t *testing.T) {
			ns := redistest.Namespace(t)
			caches := make([]*stampede.Cache[string], 8)
			for i := range caches {
				client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: masters, ContextTimeoutEnabled: true})
				t.Cleanup(func() { _ = client.Close() })
				c, err := stampede.New[string](client, stampede.WithNamespace(ns), stampede.WithoutL1(),
					stampede.WithReplicas(replicas), stampede.WithTTL(time.Minute), stampede.WithReplicaTTL(time.Minute),
					stampede.WithoutHotKeys())
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				caches[i] = c
			}
			load := func(context.Context, string) (string, error) { return "hot value", nil }
			for _, c := range caches { // every replica is written, and found
				_, err := c.Get(ctx, "user:celeb", load)
				require.NoError(t, err)
			}
			before := getsPerNode(t, masters)
			const reads = 30_000
			var wg sync.WaitGroup
			for g := range 64 {
				wg.Go(func() {
					for i := g; i < reads; i += 64 {
						if _, err := caches[i%8].Get(ctx, "user:celeb", load); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			after := getsPerNode(t, masters)
			shares := make([]float64, len(masters))
			total := 0
			for i := range masters {
				total += after[i] - before[i]
			}
			for i := range masters {
				shares[i] = float64(after[i]-before[i]) / float64(total)
			}
			// Concurrent readers of a Redis key in an instance share its GETs, so there are fewer
			// GETs than reads, the more so without replicas (one Redis key instead of three).
			t.Logf("replicas=%d: %d reads took %d GETs, per node %v", replicas, reads, total, percent(shares))
			require.Positive(t, total)
			require.LessOrEqual(t, total, reads+len(masters)*100)
			for i, s := range shares {
				if replicas == 3 {
					require.GreaterOrEqual(t, s, 0.20, "node %s", masters[i])
					require.LessOrEqual(t, s, 0.47, "node %s", masters[i])
				}
			}
			if replicas == 0 {
				primary := scripts.Slot(scripts.ValueKey(ns, "user:celeb"))
				t.Logf("the key's slot is %d", primary)
				largest := 0.0
				for _, s := range shares {
					largest = max(largest, s)
				}
				require.Greater(t, largest, 0.99, "one node serves all")
			}
		})
	}
}

func percent(shares []float64) []string {
	out := make([]string, len(shares))
	for i, s := range shares {
		out[i] = fmt.Sprintf("%.1f%%", 100*s)
	}
	return out
}

// TestClusterReplicasAfterDelete: after Delete returns, no instance reads the deleted value from
// a replica (the Delete removes them, and the L1 eviction reaches every instance); a replica
// that a write could not reach serves it for at most ReplicaTTL.
func TestClusterReplicasAfterDelete(t *testing.T) {
	masters := clusterMasters(t)
	ns := redistest.Namespace(t)
	const replicaTTL = 2 * time.Second
	caches := make([]*stampede.Cache[string], 4)
	for i := range caches {
		client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: masters, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = client.Close() })
		c, err := stampede.New[string](client, stampede.WithNamespace(ns), stampede.WithReplicas(3),
			stampede.WithReplicaTTL(replicaTTL), stampede.WithJitter(0), stampede.WithoutHotKeys())
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		caches[i] = c
	}
	version := "v1"
	load := func(context.Context, string) (string, error) { return version, nil }
	readAll := func() []string {
		var got []string
		for _, c := range caches {
			for range 6 {
				v, err := c.Get(ctx, "k", load, stampede.WithoutL1())
				require.NoError(t, err)
				got = append(got, v)
			}
		}
		return got
	}
	readAll()
	version = "v2"
	require.NoError(t, caches[0].Delete(ctx, "k"))
	for _, v := range readAll() {
		require.Equal(t, "v2", v, "the Delete removed the replicas")
	}

	// A replica the next write cannot reach (simulated: rewritten with the old envelope after it).
	admin := redis.NewClusterClient(&redis.ClusterOptions{Addrs: masters})
	t.Cleanup(func() { _ = admin.Close() })
	rk := scripts.ReplicaKeys(ns, "k", 3)[0]
	old, err := admin.Get(ctx, rk).Result()
	require.NoError(t, err)
	version = "v3"
	require.NoError(t, caches[0].Delete(ctx, "k"))
	require.NoError(t, admin.Set(ctx, rk, old, replicaTTL).Err())
	deadline := time.Now().Add(replicaTTL)
	require.Eventually(t, func() bool {
		for _, v := range readAll() {
			if v != "v3" {
				return false
			}
		}
		return true
	}, 2*replicaTTL, 50*time.Millisecond)
	require.False(t, time.Now().After(deadline.Add(time.Second)), "stale for at most ReplicaTTL")
}
