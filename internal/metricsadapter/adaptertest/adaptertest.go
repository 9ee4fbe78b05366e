// Package adaptertest holds the tests that both metrics adapters, contrib/prometheus and
// contrib/otel, must pass, and the helpers of their own tests. Each adapter describes itself
// as an Adapter, with the means to read what it exports, and calls Run.
//
// The shared tests name samples as Prometheus does (`stampede_hits_total{cache="users",
// layer="l1"}`, a histogram's `_count` and `_sum`); Adapter.Name turns each name into the
// adapter's own, through the catalogue of package metricsadapter.
package adaptertest

import (
	"testing"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
)

// An Adapter is a metrics adapter as the shared tests drive it.
type Adapter struct {
	// New returns the Metrics of a cache named cache, with opts converted to the adapter's
	// Options, on a registry or provider of its own; or nil and New's error.
	New func(t *testing.T, cache string, opts metricsadapter.Options) (Metrics, error)
	// Name returns the adapter's name of a metric: its Prom or its OTel.
	Name func(metricsadapter.Metric) string
	// EmptyHistograms reports whether a histogram shows, with no observation, from the start,
	// as Prometheus's histograms do; OpenTelemetry's show from their first observation.
	EmptyHistograms bool
}

// Metrics is an adapter's Metrics, and the reader of what it exports.
type Metrics interface {
	Hooks() stampede.Hooks
	Observe(src metricsadapter.Source)
	// Samples reads what the Metrics export and returns each sample (data point) by its name
	// and Labels; a histogram gives its name with _count and _sum.
	Samples(t testing.TB) map[string]float64
}

// Run runs the shared tests on a, each as a subtest named as the test of the adapters it
// replaces.
func Run(t *testing.T, a Adapter) {
	for _, tt := range []struct {
		name string
		test func(*testing.T, Adapter)
	}{
		{"HitsMissesAndLoads", hitsMissesAndLoads},
		{"LeaseWait", leaseWait},
		{"StaleServedAndRefreshed", staleServedAndRefreshed},
		{"RedisErrorsByOperation", redisErrorsByOperation},
		{"ReplicaHitsAndMisses", replicaHitsAndMisses},
		{"ObserveNilStops", observeNilStops},
		{"JoinedHooksReportToAll", joinedHooksReportToAll},
		{"HooksLeaveCountedEventsOut", hooksLeaveCountedEventsOut},
		{"HooksDoNotAllocate", hooksDoNotAllocate},
		{"HotKeyOfRealGets", hotKeyOfRealGets},
		{"HotKeyGaugeIsBoundedByTopK", hotKeyGaugeIsBoundedByTopK},
		{"HotKeyLabel", hotKeyLabel},
		{"HotKeysOff", hotKeysOff},
		{"NewValidates", newValidates},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.test(t, a) })
	}
}

// Instrumented returns the Metrics of a cache named "users".
func (a Adapter) Instrumented(t *testing.T, opts metricsadapter.Options) Metrics {
	t.Helper()
	m, err := a.New(t, "users", opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}
