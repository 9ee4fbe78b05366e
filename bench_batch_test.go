package stampede_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// batchKeys are the 100 keys of the batch benchmarks.
var batchKeys = func() []string {
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = fmt.Sprint("user:", i)
	}
	return keys
}()

func loadProfiles(_ context.Context, keys []string) (map[string]profile, error) {
	m := make(map[string]profile, len(keys))
	for _, k := range keys {
		m[k] = benchProfile
	}
	return m, nil
}

// BenchmarkGetManyL2Hit is GetMany of 100 fresh keys with the L1 off: one MGET of the real Redis.
func BenchmarkGetManyL2Hit(b *testing.B) {
	client := benchRedis(b)
	c := benchCache(b, client, stampede.WithoutL1(), stampede.WithEarlyRefresh(0))
	ctx := context.Background()
	if _, err := c.GetMany(ctx, batchKeys, loadProfiles); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := c.GetMany(ctx, batchKeys, loadProfiles)
		if err != nil || len(got) != len(batchKeys) {
			b.Fatal(err, len(got))
		}
	}
}

// BenchmarkRawMGet is the reference for BenchmarkGetManyL2Hit: one go-redis MGET of the same 100
// keys and json.Unmarshal of each payload, into a map as GetMany returns.
func BenchmarkRawMGet(b *testing.B) {
	client := benchRedis(b)
	ctx := context.Background()
	ns := redistest.Namespace(b)
	payload, _ := json.Marshal(benchProfile)
	rks := make([]string, len(batchKeys))
	for i, k := range batchKeys {
		rks[i] = ns + ":raw:" + k
		if err := client.Set(ctx, rks[i], payload, 0).Err(); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() { client.Del(ctx, rks...) })
	b.ReportAllocs()
	for b.Loop() {
		vals, err := client.MGet(ctx, rks...).Result()
		if err != nil {
			b.Fatal(err)
		}
		got := make(map[string]profile, len(vals))
		for i, v := range vals {
			var p profile
			if err := json.Unmarshal([]byte(v.(string)), &p); err != nil {
				b.Fatal(err)
			}
			got[batchKeys[i]] = p
		}
	}
}
