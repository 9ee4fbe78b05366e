package stampede

import (
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/stampede-cache/stampede/internal/hotkey"
)

// HotKeys configures the detection of hot keys: keys whose request rate in this instance crosses
// a threshold. Detection is on by default and cheap enough to watch every Get: it samples
// requests into a small sketch, without a lock or an allocation on the hit path.
//
// A zero field takes its default.
type HotKeys struct {
	// Threshold is the rate, in requests per second to this instance, from which a key is hot.
	// Default: 1,000.
	Threshold float64

	// Window is how often rates are measured; a hot key is reported (Hooks.OnHotKey) once per
	// window. Default: 1 second.
	Window time.Duration

	// TopK is how many of the most requested keys each window keeps. Default: 16.
	TopK int

	// SampleRate counts one request in SampleRate, rounded up to a power of two. Default: 16.
	SampleRate int

	// Promote keeps hot keys in the L1 (even when their policy skips it) for PromotedL1TTL, and
	// refreshes them early more eagerly (twice the policy's EarlyRefresh beta, at least 1),
	// until their rate falls under half the threshold.
	Promote bool

	// PromotedL1TTL is the L1 lifetime of promoted keys. Default: 4 times WithL1's TTL.
	PromotedL1TTL time.Duration

	// Replicas, if not zero, replicates hot keys (see WithReplicas) over that many replicas,
	// from the window in which they become hot until their rate falls under half the
	// threshold. Default: 0, no automatic replication.
	Replicas int
}

// HotKey is a key and its estimated request rate, in requests per second to this instance.
type HotKey struct {
	Key  string
	Rate float64
	// Replicas is how many replicas serve the key now through automatic replication.
	Replicas int
}

func (h *HotKeys) withDefaults(l1TTL time.Duration) HotKeys {
	d := *h
	if d.Threshold == 0 {
		d.Threshold = 1000
	}
	if d.Window == 0 {
		d.Window = time.Second
	}
	if d.TopK == 0 {
		d.TopK = 16
	}
	if d.SampleRate == 0 {
		d.SampleRate = 16
	}
	if d.PromotedL1TTL == 0 {
		d.PromotedL1TTL = 4 * l1TTL
	}
	return d
}

// hotKeys is the detector of a Cache and what it found in the last window.
type hotKeys struct {
	cfg      HotKeys
	detector *hotkey.Detector
	last     atomic.Pointer[[]HotKey]            // the last window's top keys, hottest first
	promoted atomic.Pointer[map[string]struct{}] // keys promoted now; read-only once stored
	hot      atomic.Pointer[map[string]struct{}] // keys hot or cooling now; read-only once stored
}

func newHotKeys(cfg HotKeys) *hotKeys {
	h := &hotKeys{cfg: cfg, detector: hotkey.New(cfg.TopK, cfg.SampleRate, rand.Uint32)}
	h.promoted.Store(&map[string]struct{}{})
	h.hot.Store(&map[string]struct{}{})
	return h
}

// replicas returns how many replicas serve key through automatic replication: HotKeys.Replicas
// while the key is hot or cooling, else 0.
func (h *hotKeys) replicas(key string) int {
	if h == nil || h.cfg.Replicas == 0 {
		return 0
	}
	if _, ok := (*h.hot.Load())[key]; ok {
		return h.cfg.Replicas
	}
	return 0
}

func (h *hotKeys) isPromoted(key string) bool {
	if h == nil || !h.cfg.Promote {
		return false
	}
	_, ok := (*h.promoted.Load())[key]
	return ok
}

// watchHotKeys ends a window of the detector every cfg.Window until Close: it publishes the
// window's top keys, reports the hot ones, and updates the promoted set.
func (c *Cache[V]) watchHotKeys() {
	h := c.hot
	t := time.NewTicker(h.cfg.Window)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-c.life.ctx.Done():
			return
		case now := <-t.C:
			c.endHotKeyWindow(now.Sub(last))
			last = now
		}
	}
}

func (c *Cache[V]) endHotKeyWindow(elapsed time.Duration) {
	h := c.hot
	top := h.detector.Rotate()
	keys := make([]HotKey, len(top))
	for i, e := range top {
		keys[i] = HotKey{Key: e.Key, Rate: float64(e.Count) / elapsed.Seconds()}
	}
	defer h.last.Store(&keys) // once complete: HotKeys reads it without a lock

	wasHot := *h.hot.Load()
	hot := make(map[string]struct{})
	for _, k := range keys {
		if k.Rate >= h.cfg.Threshold {
			c.stats.Add(statHotKeys)
			hot[k.Key] = struct{}{}
			c.hooks.hotKey(k.Key, k.Rate)
		} else if _, ok := wasHot[k.Key]; ok && k.Rate >= h.cfg.Threshold/2 {
			hot[k.Key] = struct{}{} // cooling, not cold yet
		}
	}
	if h.cfg.Promote {
		h.promoted.Store(&hot)
	}
	h.hot.Store(&hot)
	for i := range keys {
		if _, ok := hot[keys[i].Key]; ok {
			keys[i].Replicas = h.cfg.Replicas
		}
	}
	for k := range hot {
		if _, ok := wasHot[k]; !ok {
			c.log.Info("stampede: hot key", "key", k, "promoted", h.cfg.Promote, "replicas", h.cfg.Replicas)
			if h.cfg.Replicas > 0 {
				c.hooks.replicated(k, h.cfg.Replicas)
			}
		}
	}
	for k := range wasHot {
		if _, ok := hot[k]; !ok && h.cfg.Replicas > 0 {
			c.hooks.replicated(k, 0)
		}
	}
}

// HotKeys returns the most requested keys of the last detection window with their estimated
// rates, hottest first; nil when detection is off.
func (c *Cache[V]) HotKeys() []HotKey {
	if c.hot == nil {
		return nil
	}
	if last := c.hot.last.Load(); last != nil {
		return slices.Clone(*last)
	}
	return []HotKey{}
}
