// Package metricsadapter is what the two metrics adapters, contrib/prometheus and
// contrib/otel, have in common: the checks and defaults of their options, the catalogue of the
// metrics they export (names, units, descriptions), the hooks that record a cache's events, and
// the reading of a cache's counters and hot keys at each collection.
//
// Each adapter keeps its exported API and maps what this package gives onto its library's
// instruments; this package depends on neither library.
package metricsadapter
