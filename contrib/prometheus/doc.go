// Package stampedeprom exports what a [stampede.Cache] does as Prometheus metrics.
//
// A [Metrics] describes one cache, named by the value of its cache label. It collects from two
// sources, and an operator needs both:
//
//   - The cache's cumulative counters ([stampede.Stats]), read at scrape time from the function
//     given to [Metrics.ObserveStats]: hits per layer, misses, loads, load errors, lease waits,
//     early refreshes, stale values served, Redis errors, fenced loads and hot-key reports.
//     These are the counts to compute hit ratios and rates from; they cost the cache nothing
//     per request.
//   - The cache's [stampede.Hooks], returned by [Metrics.Hooks]: load latency by outcome, lease
//     wait time, the age of stale values served, Redis errors by operation, and which keys are
//     hot at what rate.
//
// Because the hooks must be given to [stampede.New] and the cache's Stats method exists only
// afterwards, setting up takes three steps:
//
//	m, err := stampedeprom.New(prometheus.DefaultRegisterer, "users", stampedeprom.Options{})
//	if err != nil { ... }
//	c, err := stampede.New[User](rdb, stampede.WithHooks(m.Wrap(myHooks)))
//	if err != nil { ... }
//	m.ObserveStats(c.Stats)
//
// Every metric is named stampede_* and carries a cache label, so several caches can share one
// registry, each with its own Metrics. Label cardinality is bounded: the only label that takes
// the value of a key is the key label of stampede_hot_key_requests_per_second, which holds at
// most [Options.MaxHotKeys] keys, each for [Options.HotKeyTTL] after it was last reported hot.
//
// docs/operations.md in the stampede repository explains each metric and gives the dashboards
// and alerts, in PromQL, that these metrics are meant for.
package stampedeprom
