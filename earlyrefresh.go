package stampede

import (
	"math"
	"time"

	"github.com/stampede-cache/stampede/internal/envelope"
)

// verdict is what a reader may do with an entry it found.
type verdict int

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

// xfetchHorizon is where XFetch's chance becomes negligible: it refreshes when an Exp(1) draw,
// -ln(U), reaches (freshUntil-now)/(loadTime*beta), and P(Exp(1) >= 40) = e^-40.
const xfetchHorizon = 40

// refreshEarly is XFetch (Vattani, Chierichetti and Lowenstein, "Optimal Probabilistic Cache
// Stampede Prevention", VLDB 2015): refresh when now - loadTime*beta*ln(U) >= freshUntil, U
// uniform in (0,1]. The chance grows as expiry nears, faster for values that took longer to
// load. Far from expiry it returns without drawing a random number.
func refreshEarly(h *envelope.Header, now int64, beta float64, rand func() float64) bool {
	delta := float64(max(h.LoadTime, time.Millisecond)) * beta
	left := float64(h.FreshUntil - now)
	if left >= delta*xfetchHorizon {
		return false
	}
	u := 1 - rand() // (0, 1]
	return -math.Log(u)*delta >= left
}
