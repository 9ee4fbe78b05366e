// Package stampedeotel exports what a [stampede.Cache] does as OpenTelemetry metrics, and
// traces its misses as OpenTelemetry spans.
//
// A [Metrics] describes one cache, named by the value of its cache attribute. It records from
// two sources, and an operator needs both:
//
//   - The cache itself, observed at each collection once given to [Metrics.Observe]: its
//     cumulative counters ([stampede.Stats]: hits per layer, misses, loads, load errors, lease
//     waits, early refreshes, stale values served, Redis errors, fenced loads, hot-key reports,
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
//	m, err := stampedeotel.New(meterProvider, "users", stampedeotel.Options{})
//	if err != nil { ... }
//	c, err := stampede.New[User](rdb, stampede.WithHooks(stampede.JoinHooks(m.Hooks(), myHooks)))
//	if err != nil { ... }
//	m.Observe(c)
//
// The instruments belong to the meter named [ScopeName]; their names start with "stampede."
// and every measurement carries a cache attribute. The OpenTelemetry Prometheus exporter, with
// its default translation of names, gives them the names of the Prometheus adapter (package
// github.com/stampede-cache/stampede/contrib/prometheus): stampede.load.duration, in seconds,
// becomes stampede_load_duration_seconds, the counter stampede.hits becomes
// stampede_hits_total, the gauge stampede.hot_key.requests, in {request}/s, becomes
// stampede_hot_key_requests_per_second. So the PromQL of docs/operations.md in the stampede
// repository applies to both adapters.
//
// Attribute cardinality is bounded: the only attribute that takes the value of a key is the
// key attribute of stampede.hot_key.requests, which shows the keys of the cache's last hot-key
// detection window, at most [stampede.HotKeys] TopK of them (16 by default);
// [Options.HotKeyLabel] can map them to coarser values or leave them out.
//
// # Traces
//
// [NewTracer] returns a [stampede.Tracer], given to [stampede.New] through
// [stampede.WithTracer]. A Get that misses then shows in the caller's trace: the Redis GET that
// missed, the lease script, the load (whose ctx carries its span, so that the loader's own
// queries are its children), the fill script, and a wait for another instance's load; a stale
// value served is an event on the caller's span. Hits emit nothing. Spans carry no key unless
// [TracerOptions.KeyAttribute] says how to show it ([HashKey] shows a pseudonym):
//
//	t, err := stampedeotel.NewTracer(tracerProvider, "users", stampedeotel.TracerOptions{})
//	if err != nil { ... }
//	c, err := stampede.New[User](rdb, stampede.WithTracer(t), stampede.WithHooks(m.Hooks()))
package stampedeotel
