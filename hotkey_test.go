package stampede_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// TestHotKeyReported: a key over the threshold is reported once per window with its rate, and
// HotKeys lists the window's top keys.
func TestHotKeyReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		reports := map[string][]float64{}
		c := one[string](t, redistest.Mini(t),
			stampede.WithHotKeys(stampede.HotKeys{Threshold: 100, Window: time.Second, SampleRate: 1}),
			stampede.WithHooks(stampede.Hooks{OnHotKey: func(key string, rate float64) {
				mu.Lock()
				reports[key] = append(reports[key], rate)
				mu.Unlock()
			}}))
		src := newSource("v")
		for range 2 { // two windows
			for i := range 500 {
				_, err := c.Get(ctx, "hot", src.load)
				require.NoError(t, err)
				if i%10 == 0 {
					_, err = c.Get(ctx, "cold", src.load)
					require.NoError(t, err)
				}
				time.Sleep(time.Second / 500)
			}
			synctest.Wait()
		}
		require.Equal(t, map[string][]float64{"hot": {500, 500}}, reports)
		require.Equal(t, []stampede.HotKey{{Key: "hot", Rate: 500}, {Key: "cold", Rate: 50}}, c.HotKeys())
		require.EqualValues(t, 2, c.Stats().HotKeys)
	})
}

// TestHotKeyPromoted: with promotion, a hot key whose policy skips the L1 is kept there while it
// is hot, and leaves it once its rate falls under half the threshold.
func TestHotKeyPromoted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := one[string](t, redistest.Mini(t), stampede.WithoutL1(),
			stampede.WithHotKeys(stampede.HotKeys{Threshold: 100, Window: time.Second, SampleRate: 1, Promote: true}))
		src := newSource("v")
		// read reads the key n times over one detection window, then lets the window end.
		read := func(n int) {
			end := time.Now().Add(time.Second)
			for range n {
				_, err := c.Get(ctx, "inventory", src.load)
				require.NoError(t, err)
				time.Sleep(time.Second / time.Duration(n))
			}
			time.Sleep(time.Until(end))
			synctest.Wait()
		}
		read(300) // hot: promoted at the end of the window
		require.False(t, stampede.InL1(c, "inventory"))
		read(300)
		require.True(t, stampede.InL1(c, "inventory"), "a promoted key uses the L1")
		read(60) // cooling but over half the threshold: still promoted
		read(20) // cold: demoted; its L1 entry is no longer read
		before := c.Stats()
		_, err := c.Get(ctx, "inventory", src.load)
		require.NoError(t, err)
		after := c.Stats()
		require.Equal(t, before.L1Hits, after.L1Hits)
		require.Equal(t, before.L2Hits+1, after.L2Hits)
	})
}

func TestHotKeysOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := one[string](t, redistest.Mini(t), stampede.WithoutHotKeys())
		require.Nil(t, c.HotKeys())
	})
}
