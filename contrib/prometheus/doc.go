// Package stampedeprom exports what a [stampede.Cache] does as Prometheus metrics.
//
// A [Metrics] describes one cache, named by the value of its cache label. It collects from two
// sources, and an operator needs both:
//
//   - The cache itself, read at scrape time once given to [Metrics.Observe]: its cumulative
//     counters ([stampede.Stats]: hits per layer, misses, loads, load errors, lease waits,
//     early refreshes, stale values served, Redis errors, fenced loads, hot-key reports,
//     replica hits and misses), the counts to compute hit ratios and rates from; and its
//     hottest keys ([stampede.Cache.HotKeys]) with their request rates. They cost the cache
//     nothing per request.
//   - The cache's [stampede.Hooks], returned by [Metrics.Hooks]: load latency by outcome, lease
//     wait time, the age of stale values served, and Redis errors by operation.
//
// Because the hooks must be given to [stampede.New] and the cache exists only afterwards,
// setting up takes three steps. To give the cache hooks of your own as well, join them with
// [stampede.JoinHooks]:
//
//	m, err := stampedeprom.New(prometheus.DefaultRegisterer, "users", stampedeprom.Options{})
//	if err != nil { ... }
//	c, err := stampede.New[User](rdb, stampede.WithHooks(stampede.JoinHooks(m.Hooks(), myHooks)))
//	if err != nil { ... }
//	m.Observe(c)
//
// Every metric is named stampede_* and carries a cache label, so several caches can share one
// registry, each with its own Metrics. Label cardinality is bounded: the only label that takes
// the value of a key is the key label of stampede_hot_key_requests_per_second, which shows the
// keys of the cache's last hot-key detection window, at most [stampede.HotKeys] TopK of them
// (16 by default); [Options.HotKeyLabel] can map them to coarser values or leave them out.
//
// docs/operations.md in the stampede repository explains each metric and gives the dashboards
// and alerts, in PromQL, that these metrics are meant for.
package stampedeprom
