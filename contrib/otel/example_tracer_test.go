package stampedeotel_test

import (
	"context"
	"fmt"
	"log"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/stampede-cache/stampede"
	stampedeotel "github.com/stampede-cache/stampede/contrib/otel"
	"github.com/stampede-cache/stampede/internal/metricsadapter/adaptertest"
)

// ExampleNewTracer traces a cache: a Get that misses shows in the request's trace as the GET
// that missed, the lease, the load (with the loader's own spans in it) and the fill; the Get
// that hits adds nothing.
func ExampleNewTracer() {
	// In production: the service's TracerProvider, with a batching exporter.
	recorder := tracetest.NewSpanRecorder()
	provider := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	defer provider.Shutdown(context.Background())
	tracer, err := stampedeotel.NewTracer(provider, "users", stampedeotel.TracerOptions{
		KeyAttribute: stampedeotel.HashKey, // or leave it nil: no keys in spans
	})
	if err != nil {
		log.Fatal(err)
	}

	rdb, closeRedis := adaptertest.ExampleRedis() // in production: the service's Redis client
	defer closeRedis()
	cache, err := stampede.New[string](rdb, stampede.WithTracer(tracer))
	if err != nil {
		log.Fatal(err)
	}
	defer cache.Close()

	ctx, request := provider.Tracer("service").Start(context.Background(), "GET /users/1")
	load := func(ctx context.Context, id string) (string, error) {
		_, query := provider.Tracer("service").Start(ctx, "SELECT users") // a child of stampede.load
		defer query.End()
		return "Ann", nil
	}
	for range 2 { // a miss, then a hit
		if _, err := cache.Get(ctx, "user:1", load); err != nil {
			log.Fatal(err)
		}
	}
	request.End()

	names := map[trace.SpanID]string{}
	for _, s := range recorder.Ended() {
		names[s.SpanContext().SpanID()] = s.Name()
	}
	for _, s := range recorder.Ended() {
		if parent, ok := names[s.Parent().SpanID()]; ok {
			fmt.Printf("%s in %s\n", s.Name(), parent)
		}
	}
	// Output:
	// stampede.redis.get in GET /users/1
	// stampede.redis.lease in GET /users/1
	// SELECT users in stampede.load
	// stampede.load in GET /users/1
	// stampede.redis.fill in GET /users/1
}
