package stampede

import (
	"fmt"
	"time"
)

// batchConfig is what WithMaxBatch and WithRefreshBatch set.
type batchConfig struct {
	maxBatch      int           // keys per BatchLoader call
	refreshWindow time.Duration // how long early refreshes of GetMany's keys are buffered; 0: not
	refreshMax    int           // a buffer this full is refreshed at once
	window        time.Duration // how long the keys GetMany calls win wait for each other's
}

func defaultBatchConfig() batchConfig {
	return batchConfig{maxBatch: 100, refreshWindow: 50 * time.Millisecond, refreshMax: 100, window: 2 * time.Millisecond}
}

func (b *batchConfig) validate() []error {
	var errs []error
	if b.maxBatch <= 0 {
		errs = append(errs, fmt.Errorf("stampede: WithMaxBatch(%d): must be positive", b.maxBatch))
	}
	if b.refreshWindow < 0 || b.refreshMax <= 0 {
		errs = append(errs, fmt.Errorf("stampede: WithRefreshBatch(%v, %d): need window >= 0 and max > 0",
			b.refreshWindow, b.refreshMax))
	}
	if b.window < 0 {
		errs = append(errs, fmt.Errorf("stampede: WithBatchWindow(%v): must not be negative", b.window))
	}
	return errs
}

// WithMaxBatch sets the most keys GetMany passes to one call of its BatchLoader: the keys an
// instance loads for one GetMany are split into chunks of at most n, loaded concurrently.
// Default: 100.
func WithMaxBatch(n int) Option {
	return option(func(c *config) { c.batch.maxBatch = n })
}

// WithRefreshBatch sets how GetMany's background refreshes (early refresh and
// stale-while-revalidate of keys read through GetMany) are merged: each refresh due waits in a
// buffer for at most window, and the keys in the buffer are then reloaded with one call of the
// BatchLoader (in chunks of WithMaxBatch), or at once when max keys are waiting. To make up for
// the wait, GetMany refreshes a key early as if it were window later: a value never expires
// because its refresh waited. Each key's refresh still takes its lease, so one instance of the
// fleet refreshes it.
//
// Keys are merged per BatchLoader function: the refreshes due through one function (the same
// func value, or closures of one function literal) go to one call of it, made with the
// BatchLoader of the GetMany that found the first of them due. A BatchLoader must therefore
// load any key its function's GetManys ask for; give sources that differ functions of their
// own. A window of 0 turns merging off: each refresh runs alone, with the BatchLoader called
// for its one key. Default: 50 milliseconds, 100 keys.
func WithRefreshBatch(window time.Duration, max int) Option {
	return option(func(c *config) { c.batch.refreshWindow, c.batch.refreshMax = window, max })
}

// WithBatchWindow sets how long the keys that concurrent GetMany calls of this instance win
// (whose lease they took) wait for each other before they are loaded: the keys that arrive
// within the window share one call of the BatchLoader (per chunk of WithMaxBatch; a full chunk
// is loaded at once), so that an instance sends one batch load where its callers would send one
// each. It adds at most the window to a GetMany that loads. Calls are merged per BatchLoader
// function, as refreshes are (see WithRefreshBatch), and the call runs with the values of the
// ctx of the GetMany that opened the window; SetTTL in it sets the TTL of every key of the call.
// 0 turns merging off: each GetMany loads its own keys. Default: 2 milliseconds.
func WithBatchWindow(d time.Duration) Option {
	return option(func(c *config) { c.batch.window = d })
}
