package stampede_test

import (
	"context"
	"testing"

	"github.com/stampede-cache/stampede"
)

// noopTracer traces nothing, but is a Tracer: what a hit costs with a tracer installed.
type noopTracer struct{}

func (noopTracer) Start(ctx context.Context, _ stampede.Span) (context.Context, func(error)) {
	return ctx, func(error) {}
}

// BenchmarkL1HitTraced is BenchmarkL1Hit with a Tracer installed, which a hit must not call:
// the two should not differ beyond noise (docs/benchmarks.md, "Tracing").
func BenchmarkL1HitTraced(b *testing.B) { benchL1Hit(b, stampede.WithTracer(noopTracer{})) }

// BenchmarkL2HitTraced is BenchmarkL2Hit with a Tracer installed: the GET of a hit is not
// traced, and costs one more reading of the clock (for the span a miss would get).
func BenchmarkL2HitTraced(b *testing.B) {
	client := benchRedis(b)
	c := benchCache(b, client, stampede.WithoutL1(), stampede.WithTracer(noopTracer{}))
	ctx := context.Background()
	if _, err := c.Get(ctx, "user:42", loadProfile); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(ctx, "user:42", loadProfile); err != nil {
			b.Fatal(err)
		}
	}
}
