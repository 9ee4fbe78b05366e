package metricsadapter

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
)

// source is a Source of fixed counters and hot keys.
type source struct {
	stats stampede.Stats
	hot   []stampede.HotKey
}

func (s source) Stats() stampede.Stats      { return s.stats }
func (s source) HotKeys() []stampede.HotKey { return s.hot }

// read returns what o.Read gives: the Stats, if any, and the hot keys' rates by label value.
func read(o *Observed) (*stampede.Stats, map[string]float64) {
	var stats *stampede.Stats
	rates := map[string]float64{}
	o.Read(func(s stampede.Stats) { stats = &s }, func(label string, rate float64) {
		_, dup := rates[label]
		if dup {
			panic("label given twice: " + label)
		}
		rates[label] = rate
	})
	return stats, rates
}

func TestObservedReadsTheStoredSource(t *testing.T) {
	var o Observed
	s, rates := read(&o)
	require.Nil(t, s, "nothing stored")
	require.Empty(t, rates)

	o.Store(source{stats: stampede.Stats{Misses: 3}, hot: []stampede.HotKey{{Key: "a", Rate: 5}, {Key: "b", Rate: 4}}})
	s, rates = read(&o)
	require.Equal(t, &stampede.Stats{Misses: 3}, s)
	require.Equal(t, map[string]float64{"a": 5, "b": 4}, rates)

	o.Store(nil)
	s, rates = read(&o)
	require.Nil(t, s, "nil stops the reads")
	require.Empty(t, rates)
}

func TestObservedLabels(t *testing.T) {
	long := "x" + strings.Repeat("é", 100) // 201 bytes: byte 128 is within an é
	var o Observed
	o.Store(source{hot: []stampede.HotKey{{Key: long + "!", Rate: 3}, {Key: long, Rate: 2}, {Key: "bad\xffutf8", Rate: 1}}})
	_, rates := read(&o)
	require.Equal(t, map[string]float64{long[:127]: 3, "bad\uFFFDutf8": 1}, rates, "the hotter of two keys cut alike")
	require.True(t, utf8.ValidString(long[:127]))

	o.HotKeyLabel = func(key string) string {
		prefix, _, ok := strings.Cut(key, ":")
		if !ok || prefix == "session" {
			return ""
		}
		return prefix + ":*"
	}
	o.Store(source{hot: []stampede.HotKey{{Key: "session:1", Rate: 90}, {Key: "user:2", Rate: 12}, {Key: "user:1", Rate: 10}, {Key: "nocolon", Rate: 5}}})
	_, rates = read(&o)
	require.Equal(t, map[string]float64{"user:*": 12}, rates)
}
