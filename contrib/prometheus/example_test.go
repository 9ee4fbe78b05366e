package stampedeprom_test

import (
	"context"
	"fmt"
	"log"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede"
	stampedeprom "github.com/stampede-cache/stampede/contrib/prometheus"
)

// Example instruments a cache: its hooks, joined with the service's own, go to New, and the
// cache's counters and hot keys are read at every scrape.
func Example() {
	mr, err := miniredis.Run() // in production: the service's Redis
	if err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()

	reg := prometheus.NewRegistry() // in production: prometheus.DefaultRegisterer, or the service's
	metrics, err := stampedeprom.New(reg, "users", stampedeprom.Options{})
	if err != nil {
		log.Fatal(err)
	}
	mine := stampede.Hooks{
		OnHotKey: func(key string, rate float64) { log.Printf("hot key %q: %.0f req/s", key, rate) },
	}
	cache, err := stampede.New[string](rdb, stampede.WithHooks(stampede.JoinHooks(metrics.Hooks(), mine)))
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()
	metrics.Observe(cache)

	load := func(ctx context.Context, key string) (string, error) { return "Ann", nil }
	for range 2 {
		if _, err := cache.Get(context.Background(), "user:1", load); err != nil {
			log.Fatal(err)
		}
	}

	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range families {
		switch f.GetName() {
		case "stampede_hits_total", "stampede_misses_total", "stampede_loads_total":
			total := 0.0 // stampede_hits_total has a series per layer
			for _, m := range f.GetMetric() {
				total += m.GetCounter().GetValue()
			}
			fmt.Println(f.GetName(), total)
		}
	}
	// Output:
	// stampede_hits_total 1
	// stampede_loads_total 1
	// stampede_misses_total 1
}
