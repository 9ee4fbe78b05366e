package stampedeprom_test

import (
	"fmt"
	"log"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stampede-cache/stampede"
	stampedeprom "github.com/stampede-cache/stampede/contrib/prometheus"
	"github.com/stampede-cache/stampede/internal/metricsadapter/adaptertest"
)

// Example instruments a cache: its hooks, joined with the service's own, go to New, and the
// cache's counters and hot keys are read at every scrape.
func Example() {
	rdb, closeRedis := adaptertest.ExampleRedis() // in production: the service's Redis client
	defer closeRedis()

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

	adaptertest.ExampleGets(cache) // the service's traffic: a miss that loads, then a hit

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
