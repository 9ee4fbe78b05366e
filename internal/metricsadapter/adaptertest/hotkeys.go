package adaptertest

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// hotCache returns a cache that detects hot keys over windows of a second, counting every
// request, and that m observes.
func hotCache(t *testing.T, m Metrics, h stampede.HotKeys) *stampede.Cache[string] {
	t.Helper()
	h.Window, h.SampleRate = time.Second, 1
	c := NewCache(t, redistest.Mini(t), stampede.WithHooks(m.Hooks()), stampede.WithHotKeys(h))
	m.Observe(c)
	return c
}

// getN gets each key of n as many times as n says.
func getN(t *testing.T, c *stampede.Cache[string], n map[string]int) {
	t.Helper()
	for key, times := range n {
		for range times {
			_, err := c.Get(ctx, key, Loader("v", nil))
			require.NoError(t, err)
		}
	}
}

// nextWindow waits for the end of the current detection window.
func nextWindow() {
	time.Sleep(time.Second)
	synctest.Wait()
}

// hotKeyOfRealGets requests keys through a real cache over detection windows, and checks that
// the gauge shows the keys of the last window with their rates, and only those.
func hotKeyOfRealGets(t *testing.T, a Adapter) {
	gauge := a.Name(metricsadapter.HotKeyRequests)
	synctest.Test(t, func(t *testing.T) {
		m := a.Instrumented(t, metricsadapter.Options{})
		c := hotCache(t, m, stampede.HotKeys{Threshold: 100})

		getN(t, c, map[string]int{"user:celeb": 200, "user:quiet": 10})
		require.Empty(t, WithPrefix(m.Samples(t), gauge), "no window has ended")
		nextWindow()
		got := m.Samples(t)
		require.Equal(t, map[string]float64{
			gauge + `{cache="users",key="user:celeb"}`: 200,
			gauge + `{cache="users",key="user:quiet"}`: 10,
		}, WithPrefix(got, gauge))
		hotKeys := a.named(`stampede_hot_keys_total{cache="users"}`)
		require.Equal(t, 1.0, got[hotKeys], "only user:celeb crossed the threshold")

		getN(t, c, map[string]int{"user:quiet": 150})
		nextWindow()
		got = m.Samples(t)
		require.Equal(t, map[string]float64{
			gauge + `{cache="users",key="user:quiet"}`: 150,
		}, WithPrefix(got, gauge), "user:celeb was not requested in the last window")
		require.Equal(t, 2.0, got[hotKeys])

		nextWindow()
		require.Empty(t, WithPrefix(m.Samples(t), gauge), "a quiet window")
	})
}

// hotKeyGaugeIsBoundedByTopK requests more keys than the detector keeps: the gauge shows the
// hottest TopK.
func hotKeyGaugeIsBoundedByTopK(t *testing.T, a Adapter) {
	gauge := a.Name(metricsadapter.HotKeyRequests)
	synctest.Test(t, func(t *testing.T) {
		m := a.Instrumented(t, metricsadapter.Options{})
		c := hotCache(t, m, stampede.HotKeys{Threshold: 1000, TopK: 2})
		getN(t, c, map[string]int{"a": 30, "b": 20, "c": 10})
		nextWindow()
		require.Equal(t, map[string]float64{
			gauge + `{cache="users",key="a"}`: 30,
			gauge + `{cache="users",key="b"}`: 20,
		}, WithPrefix(m.Samples(t), gauge))
	})
}

// hotKeyLabel checks the label values of keys no Prometheus label could hold as they are, and
// the mapping of keys to label values.
func hotKeyLabel(t *testing.T, a Adapter) {
	gauge := a.Name(metricsadapter.HotKeyRequests)
	t.Run("default", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := a.Instrumented(t, metricsadapter.Options{})
			c := hotCache(t, m, stampede.HotKeys{})
			long := "x" + strings.Repeat("é", 100) // 201 bytes: byte 128 is within an é
			getN(t, c, map[string]int{"bad\xffutf8": 1, long: 2, long + "!": 3})
			nextWindow()
			require.Equal(t, map[string]float64{
				gauge + `{cache="users",key="bad` + "\uFFFD" + `utf8"}`: 1,
				gauge + `{cache="users",key="` + long[:127] + `"}`:      3, // the hotter of the two
			}, WithPrefix(m.Samples(t), gauge)) // Prometheus's pedantic registry checks them
			require.True(t, utf8.ValidString(long[:127]))
		})
	})
	t.Run("mapped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := a.Instrumented(t, metricsadapter.Options{HotKeyLabel: func(key string) string {
				prefix, _, ok := strings.Cut(key, ":")
				if !ok || prefix == "session" {
					return "" // never shown
				}
				return prefix + ":*"
			}})
			c := hotCache(t, m, stampede.HotKeys{})
			getN(t, c, map[string]int{"user:1": 10, "user:2": 12, "session:secret": 90, "nocolon": 5})
			nextWindow()
			require.Equal(t, map[string]float64{
				gauge + `{cache="users",key="user:*"}`: 12,
			}, WithPrefix(m.Samples(t), gauge))
		})
	})
}

// hotKeysOff checks that a cache without hot-key detection shows no gauge, and its counters
// all the same.
func hotKeysOff(t *testing.T, a Adapter) {
	synctest.Test(t, func(t *testing.T) {
		m := a.Instrumented(t, metricsadapter.Options{})
		c := NewCache(t, redistest.Mini(t), stampede.WithoutHotKeys())
		m.Observe(c)
		getN(t, c, map[string]int{"k": 3})
		nextWindow()
		got := m.Samples(t)
		require.Empty(t, WithPrefix(got, a.Name(metricsadapter.HotKeyRequests)))
		require.Equal(t, 2.0, got[a.named(`stampede_hits_total{cache="users",layer="l1"}`)])
	})
}
