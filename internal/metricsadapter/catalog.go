package metricsadapter

// A Metric is one of the metrics the adapters export, under the name each adapter gives it.
// The names correspond as the OpenTelemetry Prometheus exporter translates them, so that the
// PromQL of docs/operations.md applies to both adapters.
type Metric struct {
	Prom string // the Prometheus name, its unit and _total (of a counter) included
	OTel string // the OpenTelemetry instrument's name
	Unit string // the OpenTelemetry unit
	Help string // the description: Prometheus's help, OpenTelemetry's description
}

// The metrics that the hooks record, and the gauge of the hot keys. The counters of
// stampede.Stats are the Metrics of the Counters.
var (
	LoadDuration = Metric{"stampede_load_duration_seconds", "stampede.load.duration", "s",
		"How long the cache's loads (calls of a loader, usually a database query) took, " +
			"by result: ok, not_found or error."}
	LeaseWaitDuration = Metric{"stampede_lease_wait_duration_seconds", "stampede.lease.wait.duration", "s",
		"How long callers waited for a load that another instance held the lease of."}
	StaleAge = Metric{"stampede_stale_age_seconds", "stampede.stale.age", "s",
		"How long past their fresh lifetime the stale values the cache served were."}
	RedisOpErrors = Metric{"stampede_redis_op_errors_total", "stampede.redis.op_errors", "{error}",
		"Redis calls of the cache that failed, by operation (get, lease, fill, subscribe, " +
			"...), including subscription failures."}
	HotKeyRequests = Metric{"stampede_hot_key_requests_per_second", "stampede.hot_key.requests", "{request}/s",
		"Estimated request rate, per second to this instance, of the cache's most requested keys " +
			"in the last hot-key detection window (at most stampede.HotKeys.TopK keys)."}
)

// All returns every Metric the adapters export: those of the hooks, the hot-key gauge, and
// the Counters.
func All() []Metric {
	all := []Metric{LoadDuration, LeaseWaitDuration, StaleAge, RedisOpErrors, HotKeyRequests}
	for c := range NumCounters {
		all = append(all, c.Metric())
	}
	return all
}
