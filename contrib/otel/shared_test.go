package stampedeotel_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	stampedeotel "github.com/stampede-cache/stampede/contrib/otel"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
	"github.com/stampede-cache/stampede/internal/metricsadapter/adaptertest"
)

// adapter is this package as the shared tests of the adapters drive it: each Metrics on a
// MeterProvider of its own, read by a manual reader.
var adapter = adaptertest.Adapter{
	Name: func(m metricsadapter.Metric) string { return m.OTel },
	New: func(t *testing.T, cache string, opts metricsadapter.Options) (adaptertest.Metrics, error) {
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		t.Cleanup(func() { require.NoError(t, mp.Shutdown(context.Background())) })
		m, err := stampedeotel.New(mp, cache, stampedeotel.Options(opts))
		if err != nil {
			return nil, err
		}
		return metrics{m, reader}, nil
	},
}

// metrics are the Metrics of a cache and the reader of their provider.
type metrics struct {
	*stampedeotel.Metrics
	reader *sdkmetric.ManualReader
}

func (m metrics) Observe(src metricsadapter.Source) { m.Metrics.Observe(src) }

func (m metrics) Samples(t testing.TB) map[string]float64 { return collect(t, m.reader) }

// TestShared runs the tests that both adapters pass, in package adaptertest.
func TestShared(t *testing.T) { adaptertest.Run(t, adapter) }
