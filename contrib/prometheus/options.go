package stampedeprom

// Options tune a Metrics. The zero value gives the defaults.
type Options struct {
	// LoadBuckets are the upper bounds, in seconds, of the buckets of the load latency
	// histogram (stampede_load_duration_seconds). They must be strictly increasing. If nil, the
	// default suits database lookups: 0.5ms, 1ms, 2.5ms, 5ms, 10ms, 25ms, 50ms, 100ms, 250ms,
	// 500ms, 1s, 2.5s, 5s and 10s (the cache's default load timeout).
	LoadBuckets []float64

	// WaitBuckets are the upper bounds, in seconds, of the buckets of the lease wait histogram
	// (stampede_lease_wait_duration_seconds). They must be strictly increasing. If nil, they are
	// the default LoadBuckets: a waiter waits about as long as the load it waits for.
	WaitBuckets []float64

	// StaleAgeBuckets are the upper bounds, in seconds, of the buckets of the histogram of how
	// long past their fresh lifetime stale values were when served (stampede_stale_age_seconds).
	// They must be strictly increasing. If nil: 100ms, 500ms, 1s, 5s, 10s, 30s, 1m, 5m, 15m, 1h.
	StaleAgeBuckets []float64

	// HotKeyLabel maps a hot key to the value of its key label in
	// stampede_hot_key_requests_per_second, for example to strip personal data or to group keys
	// by their prefix; keys that map to the same value share one series, which shows the rate of
	// the hottest of them. An empty result leaves the key out of the gauge. The result is made
	// valid UTF-8 and cut to 128 bytes. It is called at each scrape for each of the cache's top
	// keys, and must be safe for concurrent use. If nil, the key itself is the label value.
	HotKeyLabel func(key string) string
}
