package stampedecodec_test

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	stampedecodec "github.com/stampede-cache/stampede/contrib/codec"
)

// The tests below pin what docs/codecs.md and the doc comments of stampede.JSONCodec and
// Msgpack say each codec does not round-trip: what an instance that reads a value from Redis
// sees differently from the instance that loaded it.

// through returns what an instance reading v from Redis gets: v encoded, then decoded into a
// new V.
func through[V any](t *testing.T, c stampede.Codec, v V) V {
	t.Helper()
	data, err := c.Marshal(v)
	require.NoError(t, err)
	var got V
	require.NoError(t, c.Unmarshal(data, &got))
	return got
}

var (
	jsonCodec    = stampede.JSONCodec{}
	msgpackCodec = stampedecodec.Msgpack{}
)

func TestTrapUnexportedFields(t *testing.T) {
	type session struct {
		User  string
		token string
		Temp  string `json:"-" msgpack:"-"`
	}
	loaded := session{User: "ann", token: "t", Temp: "x"}
	for _, c := range []stampede.Codec{jsonCodec, msgpackCodec} {
		require.Equal(t, session{User: "ann"}, through(t, c, loaded), "%T", c)
	}
}

func TestTrapShadowedEmbeddedField(t *testing.T) {
	type Base struct{ ID, Rev int }
	type doc struct {
		Base
		ID string // hides Base.ID
	}
	got := through(t, jsonCodec, doc{Base: Base{ID: 1, Rev: 2}, ID: "d"})
	require.Equal(t, doc{Base: Base{Rev: 2}, ID: "d"}, got, "JSON: Base.ID is gone")
}

func TestTrapInvalidUTF8(t *testing.T) {
	require.Equal(t, "a\uFFFDb", through(t, jsonCodec, "a\xffb"))
	require.Equal(t, "a\xffb", through(t, msgpackCodec, "a\xffb"))
	require.Equal(t, []byte("a\xffb"), through(t, jsonCodec, []byte("a\xffb")), "[]byte is kept")
}

func TestTrapTime(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 30, 0, 123456789, time.FixedZone("CET", 3600))
	now := time.Now() // with a monotonic reading
	for _, c := range []stampede.Codec{jsonCodec, msgpackCodec} {
		got := through(t, c, at)
		require.True(t, got.Equal(at), "%T: the instant is kept", c)
		require.NotEqual(t, at.Location(), got.Location(), "%T: the location is not", c)
		got = through(t, c, now)
		require.True(t, got.Equal(now))
		require.False(t, got == now, "%T: == compares the monotonic reading and location too", c)
	}
	_, offset := through(t, jsonCodec, at).Zone()
	require.Equal(t, 3600, offset, "JSON: a zone of the same offset")
	require.Equal(t, time.Local, through(t, msgpackCodec, at).Location(), "MessagePack: Local")
}

func TestTrapNumbersInAny(t *testing.T) {
	const big = int64(1)<<53 + 1
	got := through(t, jsonCodec, map[string]any{"n": big, "i": 42, "o": map[string]int{"a": 1}})
	require.IsType(t, float64(0), got["n"])
	require.NotEqual(t, big, int64(got["n"].(float64)), "JSON: above 2^53 the integer changes")
	require.Equal(t, float64(42), got["i"], "JSON: a float64, so .(int) fails")
	require.IsType(t, map[string]any{}, got["o"])

	got = through(t, msgpackCodec, map[string]any{"n": big, "i": 42})
	require.Equal(t, big, got["n"], "MessagePack: integers stay integers")
	require.EqualValues(t, 42, got["i"])
	require.IsType(t, int8(0), got["i"], "of the smallest type that holds them: .(int) fails too")
}

type shape interface{ Area() float64 }

type square struct{ Side float64 }

func (s square) Area() float64 { return s.Side * s.Side }

func TestTrapNonEmptyInterface(t *testing.T) {
	type drawing struct{ S shape }
	for _, c := range []stampede.Codec{jsonCodec, msgpackCodec} {
		data, err := c.Marshal(drawing{S: square{2}})
		require.NoError(t, err, "%T encodes it", c)
		var got drawing
		require.Error(t, c.Unmarshal(data, &got), "%T cannot decode it: never a hit from Redis", c)
	}
}

// celsius has a MarshalJSON with a pointer receiver, as UnmarshalJSON must have one.
type celsius struct{ deg float64 }

func (c *celsius) MarshalJSON() ([]byte, error) { return json.Marshal(c.deg) }

func (c *celsius) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &c.deg) }

func TestTrapPointerReceiverMarshalJSON(t *testing.T) {
	data, err := jsonCodec.Marshal(celsius{deg: 21.5}) // a Cache passes a V, not a *V
	require.NoError(t, err)
	require.Equal(t, "{}", string(data), "JSON: MarshalJSON is not called")
	var got celsius
	require.Error(t, jsonCodec.Unmarshal(data, &got), "while UnmarshalJSON is, and fails on it")
}

type node struct{ Next *node }

func TestTrapUnencodable(t *testing.T) {
	cycle := &node{}
	cycle.Next = cycle
	for _, v := range []any{math.NaN(), math.Inf(1), make(chan int), func() {}, complex(1, 2), map[[2]int]int{{1, 2}: 3}, cycle} {
		_, err := jsonCodec.Marshal(v)
		require.Error(t, err, "JSON cannot encode %T: the load fails", v)
	}
	for _, v := range []any{math.NaN(), math.Inf(1)} {
		data, err := msgpackCodec.Marshal(v)
		require.NoError(t, err, "MessagePack encodes %v", v)
		var f float64
		require.NoError(t, msgpackCodec.Unmarshal(data, &f))
		require.Equal(t, fmt.Sprint(v), fmt.Sprint(f))
	}
}

func TestTrapSizes(t *testing.T) {
	var hash [32]byte
	for i := range hash {
		hash[i] = byte(200 + i%50)
	}
	data, err := jsonCodec.Marshal(hash)
	require.NoError(t, err)
	require.Greater(t, len(data), 4*len(hash), "JSON: a byte array is a list of numbers")
	data, err = jsonCodec.Marshal(hash[:])
	require.NoError(t, err)
	require.Equal(t, 46, len(data), "JSON: a []byte is base64, a third larger")
	data, err = msgpackCodec.Marshal(hash[:])
	require.NoError(t, err)
	require.Equal(t, 34, len(data), "MessagePack: 2 bytes of header")
}

func TestTrapMapOrder(t *testing.T) {
	m := map[string]int{}
	for i := range 50 {
		m[fmt.Sprint("k", i)] = i
	}
	first, err := jsonCodec.Marshal(m)
	require.NoError(t, err)
	for range 20 {
		again, err := jsonCodec.Marshal(m)
		require.NoError(t, err)
		require.Equal(t, first, again, "JSON sorts map keys: equal maps, equal bytes")
	}
	require.Equal(t, m, through(t, msgpackCodec, m), "MessagePack does not sort them; decoding does not care")
}

func TestTrapSchemaChange(t *testing.T) {
	type v1 struct{ Name string }
	type v2 struct {
		Name  string
		Email string
	}
	for _, c := range []stampede.Codec{jsonCodec, msgpackCodec} {
		data, err := c.Marshal(v1{Name: "ann"})
		require.NoError(t, err)
		var got v2
		require.NoError(t, c.Unmarshal(data, &got), "%T reads what an older version wrote", c)
		require.Equal(t, v2{Name: "ann"}, got, "with zero values for what it added")
	}
}
