package stampedeotel_test

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	stampedeotel "github.com/stampede-cache/stampede/contrib/otel"
	"github.com/stampede-cache/stampede/internal/redistest"
)

const gauge = "stampede.hot_key.requests"

// hotCache returns a cache that detects hot keys over windows of a second, counting every
// request, and that m observes.
func hotCache(t *testing.T, m *stampedeotel.Metrics, h stampede.HotKeys) *stampede.Cache[string] {
	t.Helper()
	h.Window, h.SampleRate = time.Second, 1
	c := newCache(t, redistest.Mini(t), stampede.WithHooks(m.Hooks()), stampede.WithHotKeys(h))
	m.Observe(c)
	return c
}

// getN gets each key of n as many times as n says.
func getN(t *testing.T, c *stampede.Cache[string], n map[string]int) {
	t.Helper()
	for key, times := range n {
		for range times {
			_, err := c.Get(ctx, key, loader("v", nil))
			require.NoError(t, err)
		}
	}
}

// nextWindow waits for the end of the current detection window.
func nextWindow() {
	time.Sleep(time.Second)
	synctest.Wait()
}

// TestHotKeyOfRealGets requests keys through a real cache over detection windows, and checks
// that the gauge shows the keys of the last window with their rates, and only those.
func TestHotKeyOfRealGets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{})
		c := hotCache(t, m, stampede.HotKeys{Threshold: 100})

		getN(t, c, map[string]int{"user:celeb": 200, "user:quiet": 10})
		require.Empty(t, withPrefix(collect(t, reader), gauge), "no window has ended")
		nextWindow()
		got := collect(t, reader)
		require.Equal(t, map[string]float64{
			gauge + `{cache="users",key="user:celeb"}`: 200,
			gauge + `{cache="users",key="user:quiet"}`: 10,
		}, withPrefix(got, gauge))
		require.Equal(t, 1.0, got[`stampede.hot_keys{cache="users"}`], "only user:celeb crossed the threshold")

		getN(t, c, map[string]int{"user:quiet": 150})
		nextWindow()
		got = collect(t, reader)
		require.Equal(t, map[string]float64{
			gauge + `{cache="users",key="user:quiet"}`: 150,
		}, withPrefix(got, gauge), "user:celeb was not requested in the last window")
		require.Equal(t, 2.0, got[`stampede.hot_keys{cache="users"}`])

		nextWindow()
		require.Empty(t, withPrefix(collect(t, reader), gauge), "a quiet window")
	})
}

// TestHotKeyGaugeIsBoundedByTopK requests more keys than the detector keeps: the gauge shows
// the hottest TopK.
func TestHotKeyGaugeIsBoundedByTopK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{})
		c := hotCache(t, m, stampede.HotKeys{Threshold: 1000, TopK: 2})
		getN(t, c, map[string]int{"a": 30, "b": 20, "c": 10})
		nextWindow()
		require.Equal(t, map[string]float64{
			gauge + `{cache="users",key="a"}`: 30,
			gauge + `{cache="users",key="b"}`: 20,
		}, withPrefix(collect(t, reader), gauge))
	})
}

// TestHotKeyLabel checks the attribute values of keys no Prometheus label could hold as they
// are, and the mapping of keys to values.
func TestHotKeyLabel(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			reader, m := instrumented(t, stampedeotel.Options{})
			c := hotCache(t, m, stampede.HotKeys{})
			long := "x" + strings.Repeat("é", 100) // 201 bytes: byte 128 is within an é
			getN(t, c, map[string]int{"bad\xffutf8": 1, long: 2, long + "!": 3})
			nextWindow()
			require.Equal(t, map[string]float64{
				gauge + `{cache="users",key="bad` + "\uFFFD" + `utf8"}`: 1,
				gauge + `{cache="users",key="` + long[:127] + `"}`:      3, // the hotter of the two
			}, withPrefix(collect(t, reader), gauge))
			require.True(t, utf8.ValidString(long[:127]))
		})
	})
	t.Run("mapped", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			reader, m := instrumented(t, stampedeotel.Options{HotKeyLabel: func(key string) string {
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
			}, withPrefix(collect(t, reader), gauge))
		})
	})
}

// TestHotKeysOff checks that a cache without hot-key detection shows no gauge, and its
// counters all the same.
func TestHotKeysOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{})
		c := newCache(t, redistest.Mini(t), stampede.WithoutHotKeys())
		m.Observe(c)
		getN(t, c, map[string]int{"k": 3})
		nextWindow()
		got := collect(t, reader)
		require.Empty(t, withPrefix(got, gauge))
		require.Equal(t, 2.0, got[`stampede.hits{cache="users",layer="l1"}`])
	})
}
