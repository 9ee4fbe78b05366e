package stampedeotel_test

import (
	"context"
	"fmt"
	"log"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/stampede-cache/stampede"
	stampedeotel "github.com/stampede-cache/stampede/contrib/otel"
	"github.com/stampede-cache/stampede/internal/metricsadapter/adaptertest"
)

// Example instruments a cache: its hooks go to New, its counters and hot keys are observed at
// every collection, and Unregister stops the observation when the cache closes.
func Example() {
	// In production: the service's MeterProvider, with a periodic reader and an exporter.
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer provider.Shutdown(context.Background())
	metrics, err := stampedeotel.New(provider, "users", stampedeotel.Options{})
	if err != nil {
		log.Fatal(err)
	}

	rdb, closeRedis := adaptertest.ExampleRedis() // in production: the service's Redis client
	defer closeRedis()
	cache, err := stampede.New[string](rdb, stampede.WithHooks(metrics.Hooks()))
	if err != nil {
		log.Fatal(err)
	}
	defer metrics.Unregister() // runs after cache.Close, and releases the cache
	defer cache.Close()
	metrics.Observe(cache)

	adaptertest.ExampleGets(cache) // the service's traffic: a miss that loads, then a hit

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
