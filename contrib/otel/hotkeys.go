package stampedeotel

import (
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// maxLabelLen bounds the bytes of a hot key's label value; keys may have up to 4 KiB.
const maxLabelLen = 128

// hotKeys is the bounded table behind the hot-key gauge: the latest rate of at most max keys,
// each dropped ttl after its last report.
type hotKeys struct {
	max   int
	ttl   time.Duration
	label func(key string) string // nil: the key

	mu   sync.Mutex          // guards keys
	keys map[string]hotEntry // by label value
}

type hotEntry struct {
	rate float64
	seen time.Time
}

func newHotKeys(max int, ttl time.Duration, label func(string) string) *hotKeys {
	return &hotKeys{max: max, ttl: ttl, label: label, keys: make(map[string]hotEntry, max)}
}

// record notes that key was reported hot at rate. When the table is full, the key replaces the
// one of the lowest rate if its rate is higher, and is dropped otherwise.
func (h *hotKeys) record(key string, rate float64) {
	l := key
	if h.label != nil {
		l = h.label(key)
	}
	l = labelValue(l)
	if l == "" {
		return
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.keys[l]; !ok && len(h.keys) >= h.max {
		h.expire(now)
		if len(h.keys) >= h.max {
			low, lowRate := "", rate
			for k, e := range h.keys {
				if e.rate < lowRate {
					low, lowRate = k, e.rate
				}
			}
			if low == "" {
				return // every tracked key is at least as hot
			}
			delete(h.keys, low)
		}
	}
	h.keys[l] = hotEntry{rate: rate, seen: now}
}

// hotKey is a key of the table, as the gauge shows it.
type hotKey struct {
	label string
	rate  float64
}

// snapshot drops the expired keys and returns the others.
func (h *hotKeys) snapshot() []hotKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expire(time.Now())
	keys := make([]hotKey, 0, len(h.keys))
	for l, e := range h.keys {
		keys = append(keys, hotKey{label: l, rate: e.rate})
	}
	return keys
}

// expire drops the keys last reported more than ttl before now. h.mu must be held.
func (h *hotKeys) expire(now time.Time) {
	for l, e := range h.keys {
		if now.Sub(e.seen) > h.ttl {
			delete(h.keys, l)
		}
	}
}

// labelValue returns s as valid UTF-8 (exporters may reject anything else), cut at a rune
// boundary to at most maxLabelLen bytes.
func labelValue(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= maxLabelLen {
		return s
	}
	n := maxLabelLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
