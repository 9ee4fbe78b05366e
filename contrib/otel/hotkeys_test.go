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
)

// TestHotKeyOfRealGets requests a key 200 times in a detection window of a real cache, and
// checks that the end of the window shows it in the gauge and in the count of reports.
func TestHotKeyOfRealGets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{})
		c := newCache(t, miniRedis(t), stampede.WithHooks(m.Hooks()),
			stampede.WithHotKeys(stampede.HotKeys{Threshold: 100, Window: time.Second, SampleRate: 1}))
		m.ObserveStats(c.Stats)

		for _, k := range []struct {
			key string
			n   int
		}{{"user:celeb", 200}, {"user:quiet", 10}} {
			for range k.n {
				_, err := c.Get(ctx, k.key, loader("v", nil))
				require.NoError(t, err)
			}
		}
		time.Sleep(time.Second) // the window ends
		synctest.Wait()

		got := collect(t, reader)
		require.Equal(t, map[string]float64{
			`stampede.hot_key.requests{cache="users",key="user:celeb"}`: 200,
		}, withPrefix(got, "stampede.hot_key.requests"))
		require.Equal(t, 1.0, got[`stampede.hot_keys{cache="users"}`])
	})
}

// TestHotKeyGaugeIsBounded reports more hot keys than the gauge holds, and lets them cool down.
func TestHotKeyGaugeIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{MaxHotKeys: 2, HotKeyTTL: 10 * time.Second})
		h := m.Hooks()
		gauge := func() map[string]float64 { return withPrefix(collect(t, reader), "stampede.hot_key.requests") }

		h.OnHotKey("user:a", 1500)
		h.OnHotKey("user:b", 1200)
		h.OnHotKey("user:c", 1000) // the gauge is full of hotter keys: left out
		require.Equal(t, map[string]float64{
			`stampede.hot_key.requests{cache="users",key="user:a"}`: 1500,
			`stampede.hot_key.requests{cache="users",key="user:b"}`: 1200,
		}, gauge())

		h.OnHotKey("user:d", 2000) // hotter than user:b, the coolest: replaces it
		require.Equal(t, map[string]float64{
			`stampede.hot_key.requests{cache="users",key="user:a"}`: 1500,
			`stampede.hot_key.requests{cache="users",key="user:d"}`: 2000,
		}, gauge())

		time.Sleep(6 * time.Second)
		h.OnHotKey("user:a", 1600) // still hot a window later: its rate is updated
		time.Sleep(5 * time.Second)
		require.Equal(t, map[string]float64{
			`stampede.hot_key.requests{cache="users",key="user:a"}`: 1600,
		}, gauge(), "user:d was last reported 11s ago")

		h.OnHotKey("user:e", 1) // a free place takes any rate
		time.Sleep(6 * time.Second)
		require.Equal(t, map[string]float64{
			`stampede.hot_key.requests{cache="users",key="user:e"}`: 1,
		}, gauge())
		time.Sleep(5 * time.Second)
		require.Empty(t, gauge())
	})
}

// TestHotKeyExpiredMakeRoom checks that a full gauge drops its expired keys before it compares
// rates.
func TestHotKeyExpiredMakeRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{MaxHotKeys: 1, HotKeyTTL: time.Second})
		h := m.Hooks()
		h.OnHotKey("hot", 5000)
		time.Sleep(2 * time.Second)
		h.OnHotKey("warm", 1000)
		require.Equal(t, map[string]float64{
			`stampede.hot_key.requests{cache="users",key="warm"}`: 1000,
		}, withPrefix(collect(t, reader), "stampede.hot_key.requests"))
	})
}

// TestHotKeyLabel checks the label values of keys no Prometheus label could hold as they are,
// and the mapping of keys to labels.
func TestHotKeyLabel(t *testing.T) {
	t.Run("default", func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{})
		h := m.Hooks()
		long := strings.Repeat("é", 100) // 200 bytes
		h.OnHotKey("bad\xffutf8", 1)
		h.OnHotKey(long, 2)
		got := withPrefix(collect(t, reader), "stampede.hot_key.requests")
		require.Equal(t, map[string]float64{
			`stampede.hot_key.requests{cache="users",key="bad` + "\uFFFD" + `utf8"}`: 1,
			`stampede.hot_key.requests{cache="users",key="` + long[:128] + `"}`:      2,
		}, got)
		require.True(t, utf8.ValidString(long[:128]))
	})
	t.Run("mapped", func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{HotKeyLabel: func(key string) string {
			prefix, _, ok := strings.Cut(key, ":")
			if !ok || prefix == "session" {
				return "" // never shown
			}
			return prefix + ":*"
		}})
		h := m.Hooks()
		h.OnHotKey("user:1", 1000)
		h.OnHotKey("user:2", 1200)
		h.OnHotKey("session:secret", 9000)
		require.Equal(t, map[string]float64{
			`stampede.hot_key.requests{cache="users",key="user:*"}`: 1200,
		}, withPrefix(collect(t, reader), "stampede.hot_key.requests"))
	})
}
