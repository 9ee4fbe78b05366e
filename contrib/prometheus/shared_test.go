package stampedeprom_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	stampedeprom "github.com/stampede-cache/stampede/contrib/prometheus"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
	"github.com/stampede-cache/stampede/internal/metricsadapter/adaptertest"
)

// adapter is this package as the shared tests of the adapters drive it: each Metrics on a
// pedantic registry of its own.
var adapter = adaptertest.Adapter{
	Name:            func(m metricsadapter.Metric) string { return m.Prom },
	EmptyHistograms: true,
	New: func(t *testing.T, cache string, opts metricsadapter.Options) (adaptertest.Metrics, error) {
		reg := prometheus.NewPedanticRegistry()
		m, err := stampedeprom.New(reg, cache, stampedeprom.Options(opts))
		if err != nil {
			families, gerr := reg.Gather()
			require.NoError(t, gerr)
			require.Empty(t, families, "nothing registered by a failed New")
			return nil, err
		}
		return metrics{m, reg}, nil
	},
}

// metrics are the Metrics of a cache and the registry they are registered with.
type metrics struct {
	*stampedeprom.Metrics
	reg *prometheus.Registry
}

func (m metrics) Observe(src metricsadapter.Source) { m.Metrics.Observe(src) }

// Samples lints what the registry gathers, against Prometheus's conventions, and scrapes it.
func (m metrics) Samples(t testing.TB) map[string]float64 {
	t.Helper()
	problems, err := testutil.GatherAndLint(m.reg)
	require.NoError(t, err)
	require.Empty(t, problems)
	return scrape(t, m.reg)
}

// TestShared runs the tests that both adapters pass, in package adaptertest.
func TestShared(t *testing.T) { adaptertest.Run(t, adapter) }
