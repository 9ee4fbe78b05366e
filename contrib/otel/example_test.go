package stampedeotel_test

import (
	"context"
	"fmt"
	"log"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/stampede-cache/stampede"
	stampedeotel "github.com/stampede-cache/stampede/contrib/otel"
)

// Example instruments a cache: its hooks, joined with the service's own, go to New, and the
// cache's counters and hot keys are observed at every collection.
func Example() {
	mr, err := miniredis.Run() // in production: the service's Redis
	if err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	defer rdb.Close()

	// In production: the service's MeterProvider, with a periodic reader and an exporter.
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())

	metrics, err := stampedeotel.New(provider, "users", stampedeotel.Options{})
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

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		switch m.Name {
		case "stampede.hits", "stampede.misses", "stampede.loads":
			var total int64 // stampede.hits has a data point per layer
			for _, p := range m.Data.(metricdata.Sum[int64]).DataPoints {
				total += p.Value
			}
			fmt.Println(m.Name, total)
		}
	}
	// Unordered output:
	// stampede.hits 1
	// stampede.misses 1
	// stampede.loads 1
}
