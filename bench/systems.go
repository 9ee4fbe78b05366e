package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	gocache "github.com/go-redis/cache/v9"
	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/harness"
)

// A system is one way for a service to cache profiles: a contender of the stampede and hotkey
// scenarios, run as a fleet of instances.
type system struct {
	Name string // in the tables
	Slug string // in -systems and in Redis keys
	open func(e *env, cfg *config, ns string, ttl time.Duration, load loadFunc) (*fleet, error)
}

// systems lists the contenders of the stampede and hotkey scenarios, in the order they run.
func systems() []system {
	return []system{
		{Name: "raw go-redis (GET, miss: query + SETEX)", Slug: "raw", open: openNaive},
		{Name: "otter v2 alone (Get with loader)", Slug: "otter", open: openOtter(false)},
		{Name: "otter v2 alone + refresh at 80% of TTL", Slug: "otter-refresh", open: openOtter(true)},
		{Name: "go-redis/cache Once + TinyLFU", Slug: "go-redis-cache", open: openGoRedisCache},
		{Name: "stampede Singleflight", Slug: "singleflight", open: openStampede(stampede.WithStrategy(stampede.Singleflight), stampede.WithEarlyRefresh(0))},
		{Name: "stampede Lease", Slug: "lease", open: openStampede(stampede.WithEarlyRefresh(0))},
		{Name: "stampede Lease + early refresh (defaults)", Slug: "lease-xfetch", open: openStampede()},
		{Name: "stampede Lease + early refresh + SWR", Slug: "lease-xfetch-swr", open: openRecommended},
	}
}

// pickSystems returns the systems named in list (comma-separated slugs; "all" or empty for
// every one), in the order they run.
func pickSystems(list string) ([]system, error) {
	out, unknown := harness.Pick(systems(), list, func(s system) string { return s.Slug })
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown system %q (see -list)", unknown[0])
	}
	return out, nil
}

// An instance is one service instance's cache. Get is safe for concurrent use.
type instance interface {
	Get(ctx context.Context, key string) (profile, error)
}

// A fleet is the instances of a service, each with its own Redis client and cache.
type fleet struct {
	instances []instance
	// set and del are the write path's: they write and delete a value through the first
	// instance, as the service's write path would.
	set     func(ctx context.Context, key string, p profile) error
	del     func(ctx context.Context, key string) error
	closers []func() error
}

func (f *fleet) close() {
	for _, c := range slices.Backward(f.closers) {
		_ = c()
	}
	f.closers = nil
}

// openClients opens n clients of the run's Redis and registers their closing with f.
func openClients(e *env, f *fleet, n int) []*redis.Client {
	out := make([]*redis.Client, n)
	for i := range out {
		out[i] = e.client()
		f.closers = append(f.closers, out[i].Close)
	}
	return out
}

// naive is the incident's code (BASELINE): GET; on a miss, query the database and SETEX the
// result. Every request that misses queries the database.
type naive struct {
	rdb  *redis.Client
	ns   string
	ttl  time.Duration
	load loadFunc
}

func openNaive(e *env, cfg *config, ns string, ttl time.Duration, load loadFunc) (*fleet, error) {
	f := &fleet{}
	var first *naive
	for i, c := range openClients(e, f, cfg.Instances) {
		n := &naive{rdb: c, ns: ns, ttl: ttl, load: load}
		if i == 0 {
			first = n
		}
		f.instances = append(f.instances, n)
	}
	f.set = func(ctx context.Context, key string, p profile) error {
		raw, _ := json.Marshal(p)
		return first.rdb.SetEx(ctx, first.ns+":"+key, raw, first.ttl).Err()
	}
	f.del = func(ctx context.Context, key string) error { return first.rdb.Del(ctx, first.ns+":"+key).Err() }
	return f, nil
}

func (n *naive) Get(ctx context.Context, key string) (profile, error) {
	var p profile
	raw, err := n.rdb.Get(ctx, n.ns+":"+key).Bytes()
	switch {
	case err == nil:
		return p, json.Unmarshal(raw, &p)
	case !errors.Is(err, redis.Nil):
		return p, err
	}
	if p, err = n.load(ctx, key); err != nil {
		return p, err
	}
	// As in the incident's code, a failed write is ignored: the next request queries again.
	raw, _ = json.Marshal(p)
	_ = n.rdb.SetEx(ctx, n.ns+":"+key, raw, n.ttl).Err()
	return p, nil
}

// otterInstance is otter v2 alone: each instance loads through its own cache, which runs one
// load of a key at a time; instances share nothing.
type otterInstance struct {
	cache  *otter.Cache[string, profile]
	loader otter.Loader[string, profile]
}

// openOtter returns how to open a fleet of otter caches whose entries expire after the TTL;
// with refresh, an entry read after 80% of its TTL is reloaded in the background, per instance.
func openOtter(refresh bool) func(*env, *config, string, time.Duration, loadFunc) (*fleet, error) {
	return func(_ *env, cfg *config, _ string, ttl time.Duration, load loadFunc) (*fleet, error) {
		f := &fleet{}
		for range cfg.Instances {
			o := &otter.Options[string, profile]{
				MaximumSize:      10_000,
				ExpiryCalculator: otter.ExpiryWriting[string, profile](ttl),
			}
			if refresh {
				o.RefreshCalculator = otter.RefreshWriting[string, profile](ttl * 8 / 10)
			}
			c, err := otter.New(o)
			if err != nil {
				f.close()
				return nil, err
			}
			f.closers = append(f.closers, func() error { c.StopAllGoroutines(); return nil })
			f.instances = append(f.instances, &otterInstance{cache: c, loader: otter.LoaderFunc[string, profile](load)})
		}
		// Nothing is shared: the write path writes and invalidates every instance.
		f.set = func(_ context.Context, key string, p profile) error {
			for _, i := range f.instances {
				i.(*otterInstance).cache.Set(key, p)
			}
			return nil
		}
		f.del = func(_ context.Context, key string) error {
			for _, i := range f.instances {
				i.(*otterInstance).cache.Invalidate(key)
			}
			return nil
		}
		return f, nil
	}
}

func (o *otterInstance) Get(ctx context.Context, key string) (profile, error) {
	return o.cache.Get(ctx, key, o.loader)
}

// goRedisCache is github.com/go-redis/cache/v9: Once runs one load of a key at a time per
// instance (golang.org/x/sync/singleflight) and keeps values in a TinyLFU local cache, with
// the value's TTL, and in Redis.
type goRedisCache struct {
	cache *gocache.Cache
	ns    string
	ttl   time.Duration
	load  loadFunc
}

func newGoRedisCache(rdb *redis.Client, local bool, ns string, ttl time.Duration, load loadFunc) *goRedisCache {
	o := &gocache.Options{Redis: rdb}
	if local {
		o.LocalCache = gocache.NewTinyLFU(10_000, ttl)
	}
	return &goRedisCache{cache: gocache.New(o), ns: ns, ttl: ttl, load: load}
}

func openGoRedisCache(e *env, cfg *config, ns string, ttl time.Duration, load loadFunc) (*fleet, error) {
	f := &fleet{}
	var first *goRedisCache
	for i, c := range openClients(e, f, cfg.Instances) {
		g := newGoRedisCache(c, true, ns, ttl, load)
		if i == 0 {
			first = g
		}
		f.instances = append(f.instances, g)
	}
	f.set = func(ctx context.Context, key string, p profile) error {
		return first.cache.Set(&gocache.Item{Ctx: ctx, Key: first.ns + ":" + key, Value: p, TTL: first.ttl})
	}
	f.del = func(ctx context.Context, key string) error { return first.cache.Delete(ctx, first.ns+":"+key) }
	return f, nil
}

func (g *goRedisCache) Get(ctx context.Context, key string) (profile, error) {
	var p profile
	err := g.cache.Once(&gocache.Item{
		Ctx:   ctx,
		Key:   g.ns + ":" + key,
		Value: &p,
		TTL:   g.ttl,
		Do:    func(it *gocache.Item) (any, error) { return g.load(it.Context(), key) },
	})
	return p, err
}

// stampedeInstance is this library.
type stampedeInstance struct {
	cache *stampede.Cache[profile]
	load  stampede.Loader[profile]
}

// openRecommended is the configuration the strategies guide recommends for a hot key: the
// lease, early refresh, and a stale-while-revalidate window.
func openRecommended(e *env, cfg *config, ns string, ttl time.Duration, load loadFunc) (*fleet, error) {
	return openStampede(stampede.WithEarlyRefresh(1), stampede.WithStaleWhileRevalidate(cfg.Stale))(e, cfg, ns, ttl, load)
}

// openStampede returns how to open a fleet of stampede caches with opts, which come after
// the namespace and the TTL.
func openStampede(opts ...stampede.Option) func(*env, *config, string, time.Duration, loadFunc) (*fleet, error) {
	return func(e *env, cfg *config, ns string, ttl time.Duration, load loadFunc) (*fleet, error) {
		f := &fleet{}
		var first *stampede.Cache[profile]
		for i, c := range openClients(e, f, cfg.Instances) {
			sc, err := stampede.New[profile](c, append([]stampede.Option{stampede.WithNamespace(ns), stampede.WithTTL(ttl)}, opts...)...)
			if err != nil {
				f.close()
				return nil, err
			}
			if i == 0 {
				first = sc
			}
			f.closers = append(f.closers, sc.Close)
			f.instances = append(f.instances, &stampedeInstance{cache: sc, load: load})
		}
		f.set = func(ctx context.Context, key string, p profile) error { return first.Set(ctx, key, p) }
		f.del = func(ctx context.Context, key string) error { return first.Delete(ctx, key) }
		return f, nil
	}
}

func (s *stampedeInstance) Get(ctx context.Context, key string) (profile, error) {
	return s.cache.Get(ctx, key, s.load)
}
