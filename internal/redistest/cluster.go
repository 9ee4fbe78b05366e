package redistest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterAddrs returns the seed addresses of the Redis Cluster in STAMPEDE_REDIS_CLUSTER_ADDRS
// (comma-separated, as .ci/cluster starts it: 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003), or
// skips the test (fails it with STAMPEDE_REQUIRE_INTEGRATION=1).
func ClusterAddrs(t testing.TB) []string {
	t.Helper()
	var addrs []string
	for _, a := range strings.Split(env(t, "STAMPEDE_REDIS_CLUSTER_ADDRS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// Cluster returns a new client of the Redis Cluster in STAMPEDE_REDIS_CLUSTER_ADDRS, with
// ContextTimeoutEnabled set, once it reaches every master and the cluster serves every slot. It
// is closed when the test ends. Each call returns a client of its own, as each instance of a
// service has.
func Cluster(t testing.TB) *redis.ClusterClient {
	t.Helper()
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 ClusterAddrs(t),
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		info, err := node.ClusterInfo(ctx).Result()
		if err == nil && !strings.Contains(info, "cluster_state:ok") {
			err = fmt.Errorf("the cluster is not ok at %s (run .ci/cluster):\n%s", node.Options().Addr, info)
		}
		return err
	})
	if err != nil {
		t.Fatalf("redistest: STAMPEDE_REDIS_CLUSTER_ADDRS=%v: %v", ClusterAddrs(t), err)
	}
	return c
}
