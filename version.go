package stampede

import (
	"errors"
	"time"

	"github.com/stampede-cache/stampede/internal/envelope"
)

// WithVersion tags every value this cache writes with the schema version of V, so that during a
// rolling deploy that changes V's shape, instances never decode a value written by the other
// version into the wrong shape (JSON would silently drop unknown fields and zero missing ones).
// Change the version whenever V's encoding changes; keep it when it does not. At most 255 bytes.
//
// Both versions share the namespace's keys, fences, leases and messages: a Set, Delete,
// Invalidate or Refresh through either reaches both. A value in Redis is kept by whichever
// version wrote it, until it expires or a write replaces it. An instance that finds a fresh
// value of the other version does not overwrite it (so the two versions never evict each
// other's values in a loop): it loads the key for its own L1 only, once per key at a time, and
// keeps it for the L1 TTL. During the deploy, the version that does not hold a key in Redis
// thus loads it once per instance per L1 TTL (on every Get without an L1). Values written
// without a version are another version.
//
// No fingerprint of V's type is added on its own: a fingerprint of the Go type would change
// with harmless refactors (a renamed package, a reordered field), turning every deploy into a
// cold cache, and would miss changes that matter (a JSON tag, a custom MarshalJSON). The
// version is the caller's statement that the encoding changed.
func WithVersion(v string) Option {
	return option(func(c *config) { c.version = v })
}

// errForeign stands for a value written by another version of the schema (WithVersion).
var errForeign = errors.New("stampede: a value of another schema version")

// untag returns the codec bytes of a payload written by this cache's version, or errForeign.
func (c *Cache[V]) untag(h envelope.Header, payload []byte) ([]byte, error) {
	if h.Flags&envelope.FlagTagged == 0 {
		if c.version != "" {
			return nil, errForeign
		}
		return payload, nil
	}
	tag, rest, err := envelope.CutTag(payload)
	if err != nil {
		return nil, err
	}
	if string(tag) != c.version {
		return nil, errForeign
	}
	return rest, nil
}

// foreign reports whether raw, which decode could not use, is a value of another schema
// version that p would still serve: then the caller loads for its L1 only, and leaves it.
func (c *Cache[V]) foreign(key string, raw []byte, p *Policy) bool {
	h, payload, err := envelope.Parse(raw)
	if err != nil || h.Negative() {
		return false
	}
	if _, err := c.untag(h, payload); !errors.Is(err, errForeign) {
		return false
	}
	v := c.judge(&h, time.Now().UnixNano(), p, c.hot.isPromoted(key))
	return v == serve || v == serveAndRefresh
}
