package stampede_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede"
)

// User is what the examples cache.
type User struct {
	ID   string
	Name string
}

// exampleRedis starts an in-process Redis for the examples; a service passes its own client.
func exampleRedis() (*redis.Client, func()) {
	m, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
	return rdb, func() { rdb.Close(); m.Close() }
}

// A Loader reads the source of truth; Get calls it on a miss, once per key at a time.
func Example() {
	rdb, stop := exampleRedis()
	defer stop()

	users, err := stampede.New[User](rdb, stampede.WithNamespace("users"), stampede.WithTTL(time.Minute))
	if err != nil {
		panic(err)
	}
	defer users.Close()

	queries := 0
	loadUser := func(ctx context.Context, id string) (User, error) {
		queries++ // SELECT id, name FROM users WHERE id = $1
		return User{ID: id, Name: "Grace Hopper"}, nil
	}

	ctx := context.Background()
	for range 3 {
		u, err := users.Get(ctx, "42", loadUser)
		if err != nil {
			panic(err)
		}
		fmt.Println(u.Name)
	}
	fmt.Println("queries:", queries)
	// Output:
	// Grace Hopper
	// Grace Hopper
	// Grace Hopper
	// queries: 1
}

// A loader returns ErrNotFound for a key the source does not have; the answer is cached too
// (for Policy.NegativeTTL), so a missing key does not reach the database on every request.
func ExampleCache_Get_notFound() {
	rdb, stop := exampleRedis()
	defer stop()
	users, _ := stampede.New[User](rdb, stampede.WithNegativeTTL(10*time.Second))
	defer users.Close()

	queries := 0
	loadUser := func(ctx context.Context, id string) (User, error) {
		queries++
		return User{}, fmt.Errorf("user %s: %w", id, stampede.ErrNotFound)
	}
	for range 2 {
		_, err := users.Get(context.Background(), "404", loadUser)
		fmt.Println(errors.Is(err, stampede.ErrNotFound))
	}
	fmt.Println("queries:", queries)
	// Output:
	// true
	// true
	// queries: 1
}

// After the source changed, Refresh reloads the key and overwrites its value; readers are served
// the old value meanwhile, so the key is never empty. Delete would empty it, and Invalidate
// would keep serving the old value while one reader refreshes it in the background.
func ExampleCache_Refresh() {
	rdb, stop := exampleRedis()
	defer stop()
	users, _ := stampede.New[User](rdb)
	defer users.Close()
	ctx := context.Background()

	name := "Grace Hopper"
	loadUser := func(ctx context.Context, id string) (User, error) {
		return User{ID: id, Name: name}, nil
	}
	u, _ := users.Get(ctx, "42", loadUser)
	fmt.Println(u.Name)

	name = "Rear Admiral Grace Hopper" // UPDATE users SET name = ... WHERE id = 42
	u, _ = users.Refresh(ctx, "42", loadUser)
	fmt.Println(u.Name)
	u, _ = users.Get(ctx, "42", loadUser)
	fmt.Println(u.Name)
	// Output:
	// Grace Hopper
	// Rear Admiral Grace Hopper
	// Rear Admiral Grace Hopper
}

// Set writes a value through to the cache, as a write path does after it updated the source.
func ExampleCache_Set() {
	rdb, stop := exampleRedis()
	defer stop()
	users, _ := stampede.New[User](rdb)
	defer users.Close()
	ctx := context.Background()

	if err := users.Set(ctx, "7", User{ID: "7", Name: "Ada Lovelace"}); err != nil {
		panic(err)
	}
	u, _ := users.Get(ctx, "7", func(context.Context, string) (User, error) {
		panic("not called: the value is cached")
	})
	fmt.Println(u.Name)
	// Output: Ada Lovelace
}

// WithPolicy gives each key its own policy: profiles refresh early and may be served stale for
// a minute; inventory is never stale, skips the in-process L1, and loads once per instance.
func ExampleWithPolicy() {
	rdb, stop := exampleRedis()
	defer stop()
	policy := func(key string) stampede.Policy {
		if strings.HasPrefix(key, "inventory:") {
			return stampede.Policy{Strategy: stampede.Singleflight, TTL: 2 * time.Second, SkipL1: true}
		}
		return stampede.Policy{
			TTL:                  5 * time.Minute,
			EarlyRefresh:         1,
			StaleWhileRevalidate: time.Minute,
			StaleIfError:         time.Hour,
			NegativeTTL:          10 * time.Second,
		}
	}
	cache, err := stampede.New[string](rdb, stampede.WithPolicy(policy))
	if err != nil {
		panic(err)
	}
	defer cache.Close()

	load := func(ctx context.Context, key string) (string, error) { return "value of " + key, nil }
	for _, key := range []string{"profile:42", "inventory:sku-1"} {
		v, _ := cache.Get(context.Background(), key, load)
		fmt.Println(v)
	}
	// Output:
	// value of profile:42
	// value of inventory:sku-1
}

// Stats are cumulative counters, cheap enough to poll for metrics.
func ExampleCache_Stats() {
	rdb, stop := exampleRedis()
	defer stop()
	cache, _ := stampede.New[string](rdb)
	defer cache.Close()
	load := func(ctx context.Context, key string) (string, error) { return "v", nil }
	for range 3 {
		_, _ = cache.Get(context.Background(), "k", load)
	}
	s := cache.Stats()
	fmt.Printf("loads %d, misses %d, L1 hits %d\n", s.Loads, s.Misses, s.L1Hits)
	// Output: loads 1, misses 1, L1 hits 2
}
