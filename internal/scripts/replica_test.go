package scripts

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestSlotMatchesRedis(t *testing.T) {
	// Values from Redis Cluster's specification and redis-cli CLUSTER KEYSLOT.
	require.Equal(t, 12739, Slot("123456789")) // CRC16 of "123456789" is 0x31C3
	require.Equal(t, Slot("user1000"), Slot("{user1000}.following"))
	require.Equal(t, Slot("{}x"), Slot("{}x"))
	require.NotEqual(t, Slot("{}x"), Slot("x"), "an empty tag hashes the whole key")
	// Against a real cluster (miniredis answers CLUSTER KEYSLOT with a constant).
	addrs := os.Getenv("STAMPEDE_REDIS_CLUSTER_ADDRS")
	if addrs == "" {
		t.Skip("STAMPEDE_REDIS_CLUSTER_ADDRS is not set")
	}
	c := redis.NewClient(&redis.Options{Addr: strings.Split(addrs, ",")[0], ContextTimeoutEnabled: true})
	defer c.Close()
	for _, k := range []string{"a", "ns:{k}", "ns:{}{}", "ns:{\x00}}", "ünï{cödé}", "x{}y{z}", "{", "ns:{k#1}:replica"} {
		got, err := c.Do(context.Background(), "CLUSTER", "KEYSLOT", k).Int()
		require.NoError(t, err)
		require.Equal(t, got, Slot(k), "%q", k)
	}
}

func TestReplicaKeysSpreadOverSlotRanges(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		for _, key := range []string{"user:celeb", "", "\x00x", "a#1", "ünï cödé"} { // no '}': see ReplicaKeys
			keys := ReplicaKeys("ns", key, n)
			require.Len(t, keys, n)
			seen := map[string]bool{}
			for i, k := range keys {
				require.True(t, strings.HasSuffix(k, "}:replica"))
				require.False(t, seen[k])
				seen[k] = true
				s := Slot(k)
				require.GreaterOrEqual(t, s, i*slots/n, "%q replica %d", key, i)
				require.Less(t, s, (i+1)*slots/n, "%q replica %d", key, i)
			}
		}
	}
}

func TestReplicaKeysNeverCollideWithKeys(t *testing.T) {
	all := map[string]string{}
	for i := range 200 {
		key := fmt.Sprint("k", i%20, "#", i/20)
		k := KeysFor("ns", key)
		for _, rk := range append([]string{k.Value, k.Lock, k.Gen}, ReplicaKeys("ns", key, 3)...) {
			if other, ok := all[rk]; ok && other != key {
				t.Fatalf("%q and %q share %q", key, other, rk)
			}
			all[rk] = key
		}
	}
}
