package metricsadapter

import (
	"strings"
	"sync/atomic"

	"github.com/stampede-cache/stampede"
)

// Source is what an adapter reads at each collection, usually the cache. Each adapter's own
// Source has these methods, so that it converts to this one.
type Source interface {
	Stats() stampede.Stats
	HotKeys() []stampede.HotKey
}

// Observed holds the Source that an adapter's Metrics reads at each collection, and the
// mapping of hot keys to label values. Its zero value holds no Source and labels a key with the
// key itself. It is safe for concurrent use, and must not be copied after first use.
type Observed struct {
	// HotKeyLabel is Options.HotKeyLabel; set it before first use.
	HotKeyLabel func(key string) string

	src atomic.Pointer[Source] // nil or a nil Source: none observed
}

// Store makes later reads read src; nil stops them.
func (o *Observed) Store(src Source) { o.src.Store(&src) }

// Read reads the Source, if there is one: it gives its Stats to stats, then each of its hot
// keys, hottest first, to hotKey with the key's label value. A key whose label value is empty,
// or the same as a hotter key's, is left out, so that a label value shows its hottest key.
func (o *Observed) Read(stats func(stampede.Stats), hotKey func(label string, rate float64)) {
	src := o.src.Load()
	if src == nil || *src == nil {
		return
	}
	stats((*src).Stats())
	keys := (*src).HotKeys()
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if l := o.label(k.Key); l != "" && !seen[l] {
			seen[l] = true
			hotKey(l, k.Rate)
		}
	}
}

// label returns the label value of key: HotKeyLabel's, or key, made valid UTF-8 (Prometheus
// and OTLP need it) and cut at a rune boundary to at most 128 bytes.
func (o *Observed) label(key string) string {
	if o.HotKeyLabel != nil {
		key = o.HotKeyLabel(key)
	}
	key = strings.ToValidUTF8(key, "\uFFFD")
	return strings.ToValidUTF8(key[:min(len(key), 128)], "") // drops a rune cut in two
}
