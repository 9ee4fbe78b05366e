package stampedeotel

// Options tune a Metrics. The zero value gives the defaults.
type Options struct {
	// LoadBuckets are the bucket boundaries, in seconds, advised for the load latency histogram
	// (stampede.load.duration); a view of the MeterProvider may override them. They must be
	// strictly increasing. If nil, the default suits database lookups: 0.5ms, 1ms, 2.5ms, 5ms,
	// 10ms, 25ms, 50ms, 100ms, 250ms, 500ms, 1s, 2.5s, 5s and 10s (the cache's default load
	// timeout).
	LoadBuckets []float64

	// WaitBuckets are the bucket boundaries, in seconds, advised for the lease wait histogram
	// (stampede.lease.wait.duration). They must be strictly increasing. If nil, they are the
	// default LoadBuckets: a waiter waits about as long as the load it waits for.
	WaitBuckets []float64

	// StaleAgeBuckets are the bucket boundaries, in seconds, advised for the histogram of how
	// long past their fresh lifetime stale values were when served (stampede.stale.age). They
	// must be strictly increasing. If nil: 100ms, 500ms, 1s, 5s, 10s, 30s, 1m, 5m, 15m, 1h.
	StaleAgeBuckets []float64

	// HotKeyLabel maps a hot key to the value of its key attribute in stampede.hot_key.requests,
	// for example to strip personal data or to group keys by their prefix; keys that map to the
	// same value share one attribute set, which shows the rate of the hottest of them. An empty
	// result leaves the key out of the gauge. The result is made valid UTF-8 and cut to 128
	// bytes. It is called at each collection for each of the cache's top keys, and must be safe
	// for concurrent use. If nil, the key itself is the value.
	HotKeyLabel func(key string) string
}
