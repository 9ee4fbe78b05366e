package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/stampede-cache/stampede"
)

// memDB is the embedded database model: a table of profiles behind a fixed pool of
// connections, where each query holds a connection for the query latency. Queries beyond the
// pool wait for a connection, first come first served, so an overload shows as it does on a
// real database: as queueing, and as timeouts of the requests that queued too long.
//
// A query whose caller gives up runs to its end, holding its connection, as a database goes on
// with a statement whose client has gone; the caller returns at once.
type memDB struct {
	latency time.Duration
	conns   chan struct{}  // a token per connection in use; its capacity is the pool size
	running sync.WaitGroup // queries whose callers gave up

	mu   sync.Mutex
	byID map[string]profile // guarded by mu
}

// newMemDB returns a model with pool connections, each query taking latency, holding the
// profiles of keys keys.
func newMemDB(pool int, latency time.Duration, keys int) *memDB {
	d := &memDB{
		latency: latency,
		conns:   make(chan struct{}, pool),
		byID:    make(map[string]profile, keys),
	}
	for i := range keys {
		id := keyName(i)
		d.byID[id] = profile{ID: id, Name: "User " + id[len("user:"):], Version: 1}
	}
	return d
}

func (d *memDB) lookup(ctx context.Context, id string, started func()) (profile, error) {
	// Go queues blocked senders on a channel in order, so the pool serves waiters in order.
	select {
	case d.conns <- struct{}{}:
	case <-ctx.Done():
		return profile{}, fmt.Errorf("database: waiting for a connection: %w", ctx.Err())
	}
	started()
	// The query sees the row as it was when it began, as a statement's snapshot does.
	d.mu.Lock()
	p, ok := d.byID[id]
	d.mu.Unlock()
	t := time.NewTimer(d.latency)
	select {
	case <-t.C:
		<-d.conns
	case <-ctx.Done():
		d.running.Go(func() {
			<-t.C
			<-d.conns
		})
		return profile{}, fmt.Errorf("database: query: %w", ctx.Err())
	}
	if !ok {
		return profile{}, fmt.Errorf("database: profile %q: %w", id, stampede.ErrNotFound)
	}
	return p, nil
}

// lookupMany is lookup for many ids at once: one connection, one query latency.
func (d *memDB) lookupMany(ctx context.Context, ids []string, started func()) (map[string]profile, error) {
	select {
	case d.conns <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("database: waiting for a connection: %w", ctx.Err())
	}
	started()
	found, _ := d.rows(ctx, ids) // the rows as they were when the query began
	t := time.NewTimer(d.latency)
	select {
	case <-t.C:
		<-d.conns
	case <-ctx.Done():
		d.running.Go(func() {
			<-t.C
			<-d.conns
		})
		return nil, fmt.Errorf("database: query: %w", ctx.Err())
	}
	return found, nil
}

func (d *memDB) update(_ context.Context, id string) (int64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.byID[id]
	if !ok {
		return 0, fmt.Errorf("database: profile %q: %w", id, stampede.ErrNotFound)
	}
	p.Version++
	d.byID[id] = p
	return p.Version, nil
}

func (d *memDB) rows(_ context.Context, ids []string) (map[string]profile, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]profile, len(ids))
	for _, id := range ids {
		if p, ok := d.byID[id]; ok {
			out[id] = p
		}
	}
	return out, nil
}

func (d *memDB) String() string {
	return fmt.Sprintf("embedded model (%d connections, %v per query)", cap(d.conns), d.latency)
}

// close waits for the queries whose callers gave up.
func (d *memDB) close() { d.running.Wait() }
