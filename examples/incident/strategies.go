package main

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/harness"
)

// A strategy is one way for a service to put Redis in front of the database. Each simulated
// instance of the service opens its own, with its own Redis client.
type strategy struct {
	// Name is what the report calls it.
	Name string
	// Slug names its Redis namespace and its -strategies flag value.
	Slug string
	// Baseline marks the strategies written in this example to show what the library replaces.
	Baseline bool
	// Invalidation is what the write path runs after it updated the database.
	Invalidation string
	// Batch is how it reads the timeline scenario's keys at once.
	Batch string
	// open starts one instance on client, in namespace ns, loading from db.
	open func(client *redis.Client, ns string, db *database, cfg *config) (instance, error)
}

// An instance is one service instance's cache. Its methods are safe for concurrent use.
type instance interface {
	// Get returns the profile of id, from the cache or from the database.
	Get(ctx context.Context, id string) (profile, error)
	// GetMany returns the profiles of ids (all of them, or an error), in as few queries as
	// the strategy knows how to.
	GetMany(ctx context.Context, ids []string) (map[string]profile, error)
	// Invalidate is what the write path runs after it updated the profile of id.
	Invalidate(ctx context.Context, id string) error
	// InvalidateMany is Invalidate of every one of ids at once, in one call.
	InvalidateMany(ctx context.Context, ids []string) error
	// Warm writes p to the cache, before the replay begins.
	Warm(ctx context.Context, p profile) error
	// Counts returns what the instance counted so far.
	Counts() counts
	// Close stops the instance; it does not close the client.
	Close() error
}

// strategies lists every strategy, in the order the replay runs them.
func strategies() []strategy {
	return []strategy{
		{Name: "naive (baseline)", Slug: "naive", Baseline: true, Invalidation: "DEL",
			Batch: "MGET; 1 query of the misses; SETEX each", open: openNaive},
		{Name: "lock-poll (baseline)", Slug: "lock-poll", Baseline: true, Invalidation: "DEL",
			Batch: "a lock-poll Get per key, in parallel", open: openLockPoll},
		{Name: "singleflight", Slug: "singleflight", Invalidation: "Delete", Batch: "GetMany", open: openStampede(false,
			stampede.WithStrategy(stampede.Singleflight))},
		{Name: "lease", Slug: "lease", Invalidation: "Delete", Batch: "GetMany", open: openStampede(false)},
		{Name: "lease+early-refresh+invalidate", Slug: "recommended", Invalidation: "Invalidate", Batch: "GetMany", open: openRecommended},
	}
}

// pickStrategies returns the strategies named in list (comma-separated slugs; "all" or empty
// for every one), in the replay's order.
func pickStrategies(list string) ([]strategy, error) {
	out, unknown := harness.Pick(strategies(), list, func(s strategy) string { return s.Slug })
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown strategy %q (have naive, lock-poll, singleflight, lease, recommended)", unknown[0])
	}
	return out, nil
}

// openRecommended is the configuration we recommend for profiles: the lease, early refresh
// (XFetch, explicit here though it is on by default), a stale-while-revalidate window so that
// a reader is never made to wait for a value it could be served, stale-if-error so that a
// failing database is not a failing service, and soft invalidation by the write path.
func openRecommended(client *redis.Client, ns string, db *database, cfg *config) (instance, error) {
	return openStampede(true,
		stampede.WithEarlyRefresh(1),
		stampede.WithStaleWhileRevalidate(cfg.Stale),
		stampede.WithStaleIfError(cfg.Stale),
	)(client, ns, db, cfg)
}

// openStampede returns how to open an instance of the library with opts. The write path
// invalidates softly (Invalidate) when soft is set, and deletes (Delete) otherwise.
func openStampede(soft bool, opts ...stampede.Option) func(*redis.Client, string, *database, *config) (instance, error) {
	return func(client *redis.Client, ns string, db *database, cfg *config) (instance, error) {
		all := []stampede.Option{stampede.WithNamespace(ns), stampede.WithTTL(cfg.TTL)}
		if cfg.RedisTO > 0 {
			all = append(all, stampede.WithRedisTimeout(cfg.RedisTO))
		}
		all = append(all, opts...)
		c, err := stampede.New[profile](client, all...)
		if err != nil {
			return nil, err
		}
		return &library{cache: c, load: db.lookup, loadMany: db.lookupMany, soft: soft}, nil
	}
}

// library is an instance that uses stampede, as a service would.
type library struct {
	cache    *stampede.Cache[profile]
	load     stampede.Loader[profile]
	loadMany stampede.BatchLoader[profile]
	soft     bool
}

func (l *library) Get(ctx context.Context, id string) (profile, error) {
	return l.cache.Get(ctx, id, l.load)
}

func (l *library) GetMany(ctx context.Context, ids []string) (map[string]profile, error) {
	return l.cache.GetMany(ctx, ids, l.loadMany)
}

func (l *library) Invalidate(ctx context.Context, id string) error {
	if l.soft {
		return l.cache.Invalidate(ctx, id)
	}
	return l.cache.Delete(ctx, id)
}

func (l *library) InvalidateMany(ctx context.Context, ids []string) error {
	if l.soft {
		return l.cache.InvalidateMany(ctx, ids)
	}
	return l.cache.DeleteMany(ctx, ids)
}

func (l *library) Warm(ctx context.Context, p profile) error { return l.cache.Set(ctx, p.ID, p) }

// Counts counts a Get answered with a value from the L1 or Redis, fresh or stale, as a hit,
// and a Get that waited for a load (its own or another's) as a miss.
func (l *library) Counts() counts {
	s := l.cache.Stats()
	return counts{hits: s.L1Hits + s.L2Hits, misses: s.Misses, redisErrors: s.RedisErrors}
}

func (l *library) Close() error { return l.cache.Close() }

// counts are what an instance counts of its Gets.
type counts struct {
	hits        uint64 // answered from the cache
	misses      uint64 // that found nothing to answer with, and queried or waited for a query
	redisErrors uint64 // Redis calls that failed, where the library hides them from its callers
}

func (c counts) plus(d counts) counts {
	return counts{c.hits + d.hits, c.misses + d.misses, c.redisErrors + d.redisErrors}
}

func (c counts) minus(d counts) counts {
	return counts{c.hits - d.hits, c.misses - d.misses, c.redisErrors - d.redisErrors}
}

// cacheKey is where the baselines keep the profile of id in namespace ns.
func cacheKey(ns, id string) string { return ns + ":" + id }
