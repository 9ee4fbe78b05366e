package stampede

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lifecycle owns every goroutine a Cache starts: each runs through goTracked, and Close waits
// for all of them.
type lifecycle struct {
	// ctx is the cache's own lifetime, not a request's: Close cancels it, which ends the loads,
	// waits and background work that run detached from their callers.
	ctx    context.Context
	cancel context.CancelFunc

	closed atomic.Bool // set by close; read on every call

	mu      sync.Mutex
	closing bool // guarded by mu; once set, goTracked refuses, so wg.Add never races wg.Wait
	wg      sync.WaitGroup
	loaders sync.WaitGroup // the goroutines that call loaders; Close waits for them briefly
}

// loaderGrace bounds how long Close waits for loaders to return after it cancelled their
// contexts: a loader that ignores its ctx is left running, and its value is dropped.
const loaderGrace = time.Second

func newLifecycle() *lifecycle {
	ctx, cancel := context.WithCancel(context.Background())
	return &lifecycle{ctx: ctx, cancel: cancel}
}

// goTracked runs f on a new goroutine that Close waits for, unless Close has begun.
func (l *lifecycle) goTracked(f func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	l.wg.Go(f)
	return true
}

// goLoader runs f, a call of a loader, on a new goroutine, unless Close has begun. Close waits
// for it at most loaderGrace: a loader that ignores its ctx must not hold Close.
func (l *lifecycle) goLoader(f func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing {
		return false
	}
	l.loaders.Go(f)
	return true
}

// detach returns a context for work that must outlive its caller's cancellation (a load that
// others wait for): it keeps ctx's values, drops its cancellation and deadline, and ends at
// Close.
func (l *lifecycle) detach(ctx context.Context) (context.Context, context.CancelFunc) {
	d, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(l.ctx, cancel)
	return d, func() {
		stop()
		cancel()
	}
}

// close stops new work, cancels running work and waits for it. It reports whether this call
// closed the lifecycle.
func (l *lifecycle) close(beforeWait func()) bool {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return false
	}
	l.closing = true
	l.closed.Store(true)
	l.mu.Unlock()
	l.cancel()
	beforeWait()
	l.wg.Wait()
	returned := make(chan struct{})
	go func() {
		l.loaders.Wait()
		close(returned)
	}()
	t := time.NewTimer(loaderGrace)
	defer t.Stop()
	select {
	case <-returned:
	case <-t.C:
	}
	return true
}
