package metricsadapter

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
)

// TestCountsCoverEveryCounter checks that Counts gives every counter of stampede.Stats but
// Gets, each once (Hits once per layer), in the order of the Counters.
func TestCountsCoverEveryCounter(t *testing.T) {
	s := stampede.Stats{Gets: 99, L1Hits: 1, L2Hits: 2, Misses: 3, Loads: 4, LoadErrors: 5, LeaseWaits: 6,
		EarlyRefreshes: 7, StaleServed: 8, RedisErrors: 9, FencedLoads: 10, HotKeys: 11, ReplicaHits: 12,
		ReplicaMisses: 13, CodecErrors: 14}
	counts := Counts(s)
	var sum uint64
	next := Hits
	for i, c := range counts {
		require.Equal(t, uint64(i+1), c.Value, "count %d", i)
		require.Equal(t, c.Counter.Layered(), c.Layer != "", "count %d", i)
		require.GreaterOrEqual(t, c.Counter, next, "in the order of the Counters")
		next = c.Counter
		sum += c.Value
	}
	require.Equal(t, CodecErrors, next)
	require.Equal(t, "l1", counts[0].Layer)
	require.Equal(t, "l2", counts[1].Layer)
	require.Equal(t, uint64(14*15/2), sum)
}

// TestCatalogue checks that every metric has its names, unit and description, and that the
// names correspond as the OpenTelemetry Prometheus exporter translates them.
func TestCatalogue(t *testing.T) {
	seen := map[string]bool{}
	all := All()
	require.Len(t, all, 5+int(NumCounters))
	for _, m := range all {
		require.NotEmpty(t, m.Help, m.OTel)
		require.False(t, seen[m.Prom] || seen[m.OTel], "%s is unique", m.Prom)
		seen[m.Prom], seen[m.OTel] = true, true
		require.Equal(t, m.Prom, promName(m), m.OTel)
	}
}

// promName is the exporter's translation of m's OpenTelemetry name and unit.
func promName(m Metric) string {
	name := strings.ReplaceAll(m.OTel, ".", "_")
	switch m.Unit {
	case "s":
		return name + "_seconds"
	case "{request}/s":
		return name + "_per_second"
	}
	return name + "_total" // the others are counters, of units in braces, which names leave out
}
