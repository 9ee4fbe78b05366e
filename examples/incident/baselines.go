package main

// The two baselines below are NOT the library. They are the code the library replaces, written
// here plainly so that the replay can measure it: naive is the incident's code, lock-poll is the
// usual first fix. Do not copy them.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

const (
	// pollEvery is how long a lock-poll request that lost the race for the lock sleeps before
	// it looks again.
	pollEvery = 50 * time.Millisecond
	// lockTTL is how long a lock-poll lock lasts if its holder never deletes it.
	lockTTL = 5 * time.Second
)

// naive is the incident's code (BASELINE): GET; on a miss, query the database and SETEX the
// result. Every request that misses queries the database, and the write path deletes the key.
type naive struct {
	rdb          *redis.Client
	ns           string
	db           *database
	ttl          time.Duration
	hits, misses atomic.Uint64
}

func openNaive(client *redis.Client, ns string, db *database, cfg *config) (instance, error) {
	return &naive{rdb: client, ns: ns, db: db, ttl: cfg.TTL}, nil
}

func (n *naive) Get(ctx context.Context, id string) (profile, error) {
	p, ok, err := n.cached(ctx, id)
	switch {
	case err != nil:
		return profile{}, err
	case ok:
		n.hits.Add(1)
		return p, nil
	}
	n.misses.Add(1)
	p, err = n.db.lookup(ctx, id)
	if err != nil {
		return profile{}, err
	}
	n.store(ctx, p)
	return p, nil
}

// cached reads the profile of id from Redis; ok is false on a miss.
func (n *naive) cached(ctx context.Context, id string) (p profile, ok bool, err error) {
	raw, err := n.rdb.Get(ctx, cacheKey(n.ns, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return p, false, nil
	}
	if err != nil {
		return p, false, err
	}
	return p, true, json.Unmarshal(raw, &p)
}

// store writes p with SETEX. As in the incident's code, a failed write is ignored: the next
// request queries again.
func (n *naive) store(ctx context.Context, p profile) {
	raw, err := json.Marshal(p)
	if err == nil {
		_ = n.rdb.SetEx(ctx, cacheKey(n.ns, p.ID), raw, n.ttl).Err()
	}
}

// GetMany is the incident's code for a page (BASELINE): MGET the keys; query the misses in
// one batch query, and SETEX each. Every request that misses a key queries it.
func (n *naive) GetMany(ctx context.Context, ids []string) (map[string]profile, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = cacheKey(n.ns, id)
	}
	raws, err := n.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]profile, len(ids))
	var misses []string
	for i, raw := range raws {
		s, ok := raw.(string)
		if !ok {
			misses = append(misses, ids[i])
			n.misses.Add(1)
			continue
		}
		var p profile
		if err := json.Unmarshal([]byte(s), &p); err != nil {
			return nil, err
		}
		out[ids[i]] = p
		n.hits.Add(1)
	}
	if len(misses) == 0 {
		return out, nil
	}
	found, err := n.db.lookupMany(ctx, misses)
	if err != nil {
		return nil, err
	}
	pipe := n.rdb.Pipeline()
	for id, p := range found {
		out[id] = p
		if raw, err := json.Marshal(p); err == nil {
			pipe.SetEx(ctx, cacheKey(n.ns, id), raw, n.ttl)
		}
	}
	_, _ = pipe.Exec(ctx) // ignored, as store ignores it
	return out, nil
}

func (n *naive) Invalidate(ctx context.Context, id string) error {
	return n.rdb.Del(ctx, cacheKey(n.ns, id)).Err()
}

// InvalidateMany is one DEL of every key.
func (n *naive) InvalidateMany(ctx context.Context, ids []string) error {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = cacheKey(n.ns, id)
	}
	return n.rdb.Del(ctx, keys...).Err()
}

func (n *naive) Warm(ctx context.Context, p profile) error {
	raw, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return n.rdb.SetEx(ctx, cacheKey(n.ns, p.ID), raw, n.ttl).Err()
}

// Counts has no Redis errors: the baselines return them to their callers.
func (n *naive) Counts() counts { return counts{hits: n.hits.Load(), misses: n.misses.Load()} }

func (n *naive) Close() error { return nil }

// lockPoll is the usual first fix (BASELINE): on a miss, take a lock with SET NX; the winner
// queries and writes the value, the losers sleep 50 ms and look again, until the value is there
// or their deadline passes. It sends one query, but every loser waits at least one poll
// interval, and more when the load takes longer than that.
type lockPoll struct {
	naive
}

func openLockPoll(client *redis.Client, ns string, db *database, cfg *config) (instance, error) {
	return &lockPoll{naive{rdb: client, ns: ns, db: db, ttl: cfg.TTL}}, nil
}

func (l *lockPoll) Get(ctx context.Context, id string) (profile, error) {
	lock := cacheKey(l.ns, id) + ":lock"
	for first := true; ; first = false {
		p, ok, err := l.cached(ctx, id)
		if err != nil {
			return profile{}, err
		}
		if ok {
			if first {
				l.hits.Add(1)
			}
			return p, nil
		}
		if first {
			l.misses.Add(1)
		}
		won, err := l.rdb.SetNX(ctx, lock, token(), lockTTL).Result()
		if err != nil {
			return profile{}, err
		}
		if won {
			p, err := l.db.lookup(ctx, id)
			if err == nil {
				l.store(ctx, p)
			}
			// Deleted without checking whose lock it is, as such code usually does.
			_ = l.rdb.Del(context.WithoutCancel(ctx), lock).Err()
			return p, err
		}
		t := time.NewTimer(pollEvery)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return profile{}, ctx.Err()
		}
	}
}

// GetMany has no batch form in the usual fix (BASELINE): it runs Get for each key, all at once.
func (l *lockPoll) GetMany(ctx context.Context, ids []string) (map[string]profile, error) {
	out := make([]profile, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	for i, id := range ids {
		g.Go(func() (err error) {
			out[i], err = l.Get(gctx, id)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	m := make(map[string]profile, len(ids))
	for i, id := range ids {
		m[id] = out[i]
	}
	return m, nil
}

// token returns a random lock value.
func token() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
