package stampede

import (
	"context"
	"reflect"
	"sync"
	"time"
)

// One batch load per instance: the keys that concurrent GetMany calls of an instance win (each
// leads its own flights) wait at most the window of WithBatchWindow for each other, and are then
// loaded together, with one call of the BatchLoader per chunk of WithMaxBatch. A buffer that
// holds WithMaxBatch keys is loaded at once. As for merged refreshes, calls are merged per
// BatchLoader function (see WithRefreshBatch).

// loadBuffer holds the keys waiting for their window to end.
type loadBuffer[V any] struct {
	mu   sync.Mutex
	open map[uintptr]*pendingLoad[V] // guarded by mu: the buffer of each BatchLoader function
}

// pendingLoad is one buffer: the keys of the GetMany calls that joined it, loaded together.
type pendingLoad[V any] struct {
	ctx  context.Context // the first caller's: the loader gets its values
	load BatchLoader[V]
	its  []*item[V]  // guarded by loadBuffer.mu while the buffer is open
	out  []loaded[V] // written before done is closed
	full chan struct{}
	done chan struct{}
}

// loadTogether is loadMany (encoded, for a fill) for the keys a GetMany won, merged with the keys
// other GetMany calls of this instance win within the window. It returns when their load
// ended: within the window plus the load timeout, or at Close.
func (c *Cache[V]) loadTogether(ctx context.Context, its []*item[V], load BatchLoader[V]) []loaded[V] {
	if c.batch.window <= 0 {
		return c.loadMany(ctx, its, load, true)
	}
	fn := reflect.ValueOf(load).Pointer()
	b := &c.loadBuf
	b.mu.Lock()
	pl := b.open[fn]
	if pl == nil {
		pl = &pendingLoad[V]{ctx: ctx, load: load, full: make(chan struct{}), done: make(chan struct{})}
		if !c.life.goTracked(func() { c.flushLoads(fn, pl) }) {
			b.mu.Unlock()
			return c.loadMany(ctx, its, load, true) // closing: it ends as the load's ctx does
		}
		if b.open == nil {
			b.open = make(map[uintptr]*pendingLoad[V])
		}
		b.open[fn] = pl
	}
	from := len(pl.its)
	pl.its = append(pl.its, its...)
	if len(pl.its) >= c.batch.maxBatch {
		delete(b.open, fn) // closed: the next keys open another buffer
		close(pl.full)
	}
	b.mu.Unlock()
	<-pl.done
	return pl.out[from : from+len(its)]
}

// flushLoads waits until pl's window ends (or it is full, or Close), and loads its keys.
func (c *Cache[V]) flushLoads(fn uintptr, pl *pendingLoad[V]) {
	t := time.NewTimer(c.batch.window)
	select {
	case <-pl.full:
	case <-t.C:
	case <-c.life.ctx.Done():
	}
	t.Stop()
	b := &c.loadBuf
	b.mu.Lock()
	if b.open[fn] == pl {
		delete(b.open, fn)
	}
	its := pl.its
	b.mu.Unlock()
	pl.out = c.loadMany(pl.ctx, its, pl.load, true)
	close(pl.done)
}
