package stampede_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/stampede-cache/stampede"
)

// A loader that learns the data's lifetime from the source caches it exactly so long.
func ExampleSetTTL() {
	rdb, stop := exampleRedis()
	defer stop()
	tokens, err := stampede.New[string](rdb, stampede.WithNamespace("tokens"))
	if err != nil {
		panic(err)
	}
	defer tokens.Close()

	loadToken := func(ctx context.Context, service string) (string, error) {
		token, expiresIn := "t-123", 30*time.Second // from the token endpoint's reply
		stampede.SetTTL(ctx, expiresIn-5*time.Second)
		return token, nil
	}
	t, err := tokens.Get(context.Background(), "billing", loadToken)
	fmt.Println(t, err)
	// Output: t-123 <nil>
}

// Peek answers from the cache only: it never loads.
func ExampleCache_Peek() {
	rdb, stop := exampleRedis()
	defer stop()
	users, err := stampede.New[User](rdb, stampede.WithNamespace("users-peek"))
	if err != nil {
		panic(err)
	}
	defer users.Close()
	ctx := context.Background()

	_, found, _ := users.Peek(ctx, "42")
	fmt.Println("before:", found)
	_ = users.Set(ctx, "42", User{ID: "42", Name: "Grace Hopper"})
	u, found, _ := users.Peek(ctx, "42")
	fmt.Println("after:", found, u.Name)
	// Output:
	// before: false
	// after: true Grace Hopper
}

// InvalidateAll makes every value of the namespace stale at once, after a change that touches
// them all (a price list, a feature flag). Readers keep getting the old values while one
// refresh per key replaces each.
func ExampleCache_InvalidateAll() {
	rdb, stop := exampleRedis()
	defer stop()
	prices, err := stampede.New[int](rdb, stampede.WithNamespace("prices"),
		stampede.WithStaleWhileRevalidate(time.Minute), stampede.WithoutL1())
	if err != nil {
		panic(err)
	}
	defer prices.Close()
	ctx := context.Background()

	var price atomic.Int64 // the source of truth
	price.Store(100)
	load := func(context.Context, string) (int, error) { return int(price.Load()), nil }
	p, _ := prices.Get(ctx, "sku-1", load)
	fmt.Println(p)

	time.Sleep(2 * time.Millisecond) // (values are dated in milliseconds)
	price.Store(120)
	if err := prices.InvalidateAll(ctx); err != nil {
		panic(err)
	}
	p, _ = prices.Get(ctx, "sku-1", load) // the old price, at once; a refresh starts
	fmt.Println(p)
	for p != 120 {
		time.Sleep(time.Millisecond)
		p, _ = prices.Get(ctx, "sku-1", load)
	}
	fmt.Println(p)
	// Output:
	// 100
	// 100
	// 120
}
