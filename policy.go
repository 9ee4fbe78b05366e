package stampede

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/stampede-cache/stampede/internal/envelope"
)

// Strategy chooses how a Cache keeps the loads of one key from piling onto the source.
type Strategy int

const (
	// Lease runs at most one load of a key at a time across every Cache that shares the Redis
	// and namespace: the caller that takes the key's lease in Redis loads, the others wait for
	// its notification. It is the default.
	Lease Strategy = iota
	// Singleflight runs at most one load of a key at a time in each Cache (each instance of the
	// service), without a lease: N instances may load a key N times at once, and nobody waits
	// on another instance.
	Singleflight
)

func (s Strategy) String() string {
	switch s {
	case Lease:
		return "Lease"
	case Singleflight:
		return "Singleflight"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// Policy is how a Cache treats a key: how long its values stay fresh, whether stale values may
// be served, and how loads are deduplicated.
//
// Keys get the cache-wide policy: DefaultPolicy, changed by the policy options (WithTTL,
// WithStrategy, ...). WithPolicy decides each key's Policy with a function instead, and per-call
// GetOptions change the fields that make sense for one call (TTL, NegativeTTL, the stale
// windows, skipping the L1).
//
// In a Policy from WithPolicy's function, as in HotKeys, a zero field takes its default: the
// field of DefaultPolicy, with the cache's TTL (WithTTL). A negative duration or beta turns the
// feature off: NegativeTTL: -1 caches no not-found, EarlyRefresh: -1 never refreshes early.
type Policy struct {
	// Strategy deduplicates loads fleet-wide (Lease, the zero value) or per instance
	// (Singleflight).
	Strategy Strategy

	// TTL is how long a loaded value is fresh. Each write takes up to Jitter of it off (see
	// WithJitter), so keys written together do not expire together. Zero means the cache's TTL.
	TTL time.Duration

	// NegativeTTL is how long a loader's ErrNotFound is cached. Off (negative): nothing is
	// cached, and every Get of a missing key calls the loader (still once per key at a time).
	NegativeTTL time.Duration

	// StaleWhileRevalidate is how long after its TTL a value is still served, at once, while
	// one background refresh replaces it. Off (the default): an expired value is a miss.
	StaleWhileRevalidate time.Duration

	// StaleIfError is how long after its TTL a value is served instead of the error when its
	// load fails. Off (the default): the error is returned.
	StaleIfError time.Duration

	// EarlyRefresh is the beta of probabilistic early refresh (XFetch): a value is refreshed in
	// the background, before it expires, when now - loadTime*beta*ln(U) >= its expiry, U uniform
	// in (0,1]. 1 is the usual choice (the default), larger refreshes earlier.
	EarlyRefresh float64

	// SkipL1 keeps the key out of the in-process L1: every Get reads Redis.
	SkipL1 bool

	// Replicas is how many replica keys, on other Redis Cluster nodes, serve the key's reads
	// (see WithReplicas); none by default: the key's node serves them all. A replica may serve a
	// value for up to WithReplicaTTL after a write replaced it: keep it zero for data that must
	// be exact.
	Replicas int
}

// DefaultPolicy returns the policy of a Cache created without policy options.
func DefaultPolicy() Policy {
	return Policy{
		Strategy:     Lease,
		TTL:          time.Minute,
		NegativeTTL:  10 * time.Second,
		EarlyRefresh: 1,
	}
}

// hardTTL is how long Redis keeps a value written at ttl: as long as any policy may serve it.
func (p *Policy) hardTTL(ttl time.Duration) time.Duration {
	return ttl + max(p.StaleWhileRevalidate, p.StaleIfError)
}

func (p *Policy) validate() error {
	switch {
	case p.Strategy != Lease && p.Strategy != Singleflight:
		return fmt.Errorf("stampede: unknown strategy %d", int(p.Strategy))
	case p.TTL <= 0:
		return fmt.Errorf("stampede: TTL %v is not positive", p.TTL)
	case p.NegativeTTL < 0:
		return fmt.Errorf("stampede: negative NegativeTTL %v", p.NegativeTTL)
	case p.StaleWhileRevalidate < 0:
		return fmt.Errorf("stampede: negative StaleWhileRevalidate %v", p.StaleWhileRevalidate)
	case p.StaleIfError < 0:
		return fmt.Errorf("stampede: negative StaleIfError %v", p.StaleIfError)
	case !(p.EarlyRefresh >= 0) || math.IsInf(p.EarlyRefresh, 0):
		return fmt.Errorf("stampede: EarlyRefresh %v is not a finite beta >= 0", p.EarlyRefresh)
	case p.Replicas < 0 || p.Replicas > maxReplicas:
		return fmt.Errorf("stampede: Replicas %d is not in [0, %d]", p.Replicas, maxReplicas)
	}
	return nil
}

// verdict is what a reader may do with an entry it found.
type verdict int

// judge decides what to do with an entry at now (Unix nanoseconds) under policy p. A promoted
// hot key is refreshed early more eagerly, even if its policy does not refresh early.
func (c *Cache[V]) judge(h *envelope.Header, now int64, p *Policy, promoted bool) verdict {
	if h.WrittenAt < c.topo.staleBefore.Load() {
		// Written before a Redis restart that may have rolled it back: stale, as if invalidated.
		inv := *h
		inv.Flags |= envelope.FlagInvalidated
		return judge(&inv, now, p, promoted, c.rand)
	}
	return judge(h, now, p, promoted, c.rand)
}

// judge is Cache.judge; it needs nothing of the cache's type, and as a plain function it is
// cheaper on the hit path than a method of a generic type.
func judge(h *envelope.Header, now int64, p *Policy, promoted bool, rand func() float64) verdict {
	beta := p.EarlyRefresh
	if promoted {
		beta = max(2*beta, 1)
	}
	switch {
	case h.Fresh(now):
		if beta > 0 && refreshEarly(h, now, beta, rand) {
			return serveAndRefresh
		}
		return serve
	case now < h.FreshUntil+int64(p.StaleWhileRevalidate) || h.Invalidated() && now < h.FreshUntil:
		// An invalidated value is stale, but never worse than what the TTL promised.
		return serveAndRefresh
	case now < h.FreshUntil+int64(p.StaleIfError):
		return fallback
	}
	return useless
}

// policyFor returns the policy of one call.
func (c *Cache[V]) policyFor(key string, opts []GetOption) (Policy, error) {
	p := c.policy
	if c.policyFunc != nil {
		p = c.policyFunc(key)
		p.defaults(&c.policy)
	}
	if len(opts) > 0 {
		// Options take a pointer through an interface, which moves the policy to the heap:
		// only calls with options pay for it.
		q := p
		for _, o := range opts {
			if o == nil {
				return p, errors.New("stampede: nil GetOption")
			}
			o.applyGetOption(&q)
		}
		p = q
	}
	if c.policyFunc != nil || len(opts) > 0 {
		if err := p.validate(); err != nil {
			return p, fmt.Errorf("%w (policy of key %q)", err, key)
		}
	}
	return p, nil
}

const (
	// serve: fresh; return it.
	serve verdict = iota
	// serveAndRefresh: return it, and refresh it in the background (early refresh of a fresh
	// value, or stale-while-revalidate).
	serveAndRefresh
	// fallback: too old to serve, but kept to serve if the load fails (stale-if-error).
	fallback
	// useless: too old for anything.
	useless
)

// defaults gives the zero fields of a Policy from WithPolicy's function the values of base (the
// cache-wide policy), and turns the negative ones into zero: off, as the cache uses them.
func (p *Policy) defaults(base *Policy) {
	orDefault := func(d *time.Duration, def time.Duration) {
		switch {
		case *d == 0:
			*d = def
		case *d < 0:
			*d = 0
		}
	}
	if p.TTL == 0 {
		p.TTL = base.TTL
	}
	orDefault(&p.NegativeTTL, base.NegativeTTL)
	orDefault(&p.StaleWhileRevalidate, base.StaleWhileRevalidate)
	orDefault(&p.StaleIfError, base.StaleIfError)
	switch {
	case p.EarlyRefresh == 0:
		p.EarlyRefresh = base.EarlyRefresh
	case p.EarlyRefresh < 0:
		p.EarlyRefresh = 0
	}
	if p.Replicas == 0 {
		p.Replicas = base.Replicas
	}
}
