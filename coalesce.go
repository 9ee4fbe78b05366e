package stampede

import (
	"context"
	"hash/maphash"
	"sync"
)

// reads coalesces concurrent GETs of one key in an instance: the first caller reads Redis on its
// own goroutine, and callers that come while it reads wait for its reply instead of sending
// their own. A burst of callers on a cold key thus sends one GET per instance, not one per
// caller, and an uncontended read costs no allocation (its record is pooled).
//
// x/sync/singleflight would run each read on a goroutine of its own (DoChan) or keep waiters
// from honouring their contexts (Do); a read is short, so its leader runs it inline.
type reads struct {
	seed   maphash.Seed
	shards [readShards]readShard
	pool   sync.Pool // of *read
}

const readShards = 64

type readShard struct {
	mu sync.Mutex
	m  map[string]*read // guarded by mu
}

// A read is one GET in progress and, once done is closed, its reply.
type read struct {
	done    chan struct{} // created by the first waiter, under the shard's lock
	waiters int           // guarded by the shard's lock
	raw     []byte
	err     error
}

func newReads() *reads {
	r := &reads{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].m = make(map[string]*read)
	}
	r.pool.New = func() any { return new(read) }
	return r
}

// do returns the reply of get for key, shared with every concurrent caller for key. A caller
// that waits returns ctx.Err() if ctx ends first; the reader itself runs get to its end.
func (r *reads) do(ctx context.Context, key string, get func() ([]byte, error)) ([]byte, error) {
	s := &r.shards[maphash.String(r.seed, key)&(readShards-1)]
	s.mu.Lock()
	if rd, ok := s.m[key]; ok {
		if rd.done == nil {
			rd.done = make(chan struct{})
		}
		rd.waiters++
		s.mu.Unlock()
		select {
		case <-rd.done:
			return rd.raw, rd.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	rd := r.pool.Get().(*read)
	s.m[key] = rd
	s.mu.Unlock()

	raw, err := get()

	s.mu.Lock()
	delete(s.m, key)
	shared := rd.waiters > 0
	if shared {
		rd.raw, rd.err = raw, err
		close(rd.done)
	}
	s.mu.Unlock()
	if !shared {
		r.pool.Put(rd) // nobody else saw it
	}
	return raw, err
}
