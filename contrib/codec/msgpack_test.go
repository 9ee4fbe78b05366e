package stampedecodec_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	stampedecodec "github.com/stampede-cache/stampede/contrib/codec"
)

func TestMsgpackRoundTrip(t *testing.T) {
	for _, c := range []stampedecodec.Msgpack{{}, {StructTag: "json"}} {
		t.Run("tag="+c.StructTag, func(t *testing.T) {
			roundTrip(t, c, smallValue())
			roundTrip(t, c, profileValue())
			roundTrip(t, c, "")
			roundTrip(t, c, "text")
			roundTrip(t, c, []byte{0, 1, 2, 0xc1, 0xff})
			roundTrip(t, c, map[string]int{"a": 1, "b": 2})
			roundTrip(t, c, []int{})
			roundTrip(t, c, int64(math.MaxInt64))
			roundTrip(t, c, uint64(math.MaxUint64))
			roundTrip(t, c, math.Inf(-1))
		})
	}
}

// roundTrip encodes v with c and checks that it decodes to v.
func roundTrip[V any](t *testing.T, c interface {
	Marshal(any) ([]byte, error)
	Unmarshal([]byte, any) error
}, v V) {
	t.Helper()
	data, err := c.Marshal(v)
	require.NoError(t, err)
	var got V
	require.NoError(t, c.Unmarshal(data, &got))
	require.Equal(t, v, got)
}

func TestMsgpackZeroAndNil(t *testing.T) {
	c := stampedecodec.Msgpack{}
	roundTrip(t, c, small{})
	roundTrip(t, c, profile{})
	roundTrip(t, c, (*small)(nil))

	data, err := c.Marshal(nil)
	require.NoError(t, err)
	require.Equal(t, []byte{0xc0}, data, "nil is MessagePack's nil")
	p := &small{ID: 1}
	require.NoError(t, c.Unmarshal(data, &p))
	require.Nil(t, p, "nil decodes into a pointer as nil")
	var a any
	require.NoError(t, c.Unmarshal(data, &a))
	require.Nil(t, a)

	// A nil slice stays nil, and an empty one empty: MessagePack tells them apart, JSON too.
	var s []int
	roundTrip(t, c, s)
	roundTrip(t, c, []int{})
}

func TestMsgpackErrors(t *testing.T) {
	c := stampedecodec.Msgpack{}
	var v small
	good, err := c.Marshal(smallValue())
	require.NoError(t, err)

	require.Error(t, c.Unmarshal(nil, &v), "no data")
	require.Error(t, c.Unmarshal([]byte{}, &v), "no data")
	for n := 1; n < len(good); n++ {
		require.Error(t, c.Unmarshal(good[:n], &v), "truncated to %d bytes", n)
	}
	require.ErrorContains(t, c.Unmarshal(append(good, 0x01), &v), "1 bytes after the value")
	require.Error(t, c.Unmarshal([]byte{0xc1}, &v), "0xc1 is never used")
	require.Error(t, c.Unmarshal([]byte{0xa3, 'a', 'b', 'c'}, &v), "a string is not a struct")
	require.Error(t, c.Unmarshal(good, nil), "nil target")
	require.Error(t, c.Unmarshal(good, v), "target not a pointer")

	_, err = c.Marshal(make(chan int))
	require.Error(t, err, "a channel has no encoding")
}

// TestMsgpackKeepsWhatJSONLoses pins the differences docs/codecs.md describes.
func TestMsgpackKeepsWhatJSONLoses(t *testing.T) {
	c := stampedecodec.Msgpack{}

	invalid := "a\xffb"
	roundTrip(t, c, invalid) // JSON: "a\ufffdb"

	var a any
	data, err := c.Marshal(int64(1) << 60)
	require.NoError(t, err)
	require.NoError(t, c.Unmarshal(data, &a))
	require.Equal(t, int64(1)<<60, a, "an integer in an any stays an integer") // JSON: float64

	// Unexported fields are dropped, as with JSON.
	type withHidden struct {
		Shown  string
		hidden string
	}
	data, err = c.Marshal(withHidden{Shown: "s", hidden: "h"})
	require.NoError(t, err)
	var h withHidden
	require.NoError(t, c.Unmarshal(data, &h))
	require.Equal(t, withHidden{Shown: "s"}, h)
}

func TestMsgpackStructTag(t *testing.T) {
	type user struct {
		Name     string `json:"name"`
		Password string `json:"-"`
		Note     string `json:"note,omitempty"`
		Both     string `json:"j" msgpack:"m"`
	}
	u := user{Name: "ann", Password: "secret", Both: "b"}

	plain, err := stampedecodec.Msgpack{}.Marshal(u)
	require.NoError(t, err)
	require.Contains(t, string(plain), "secret", "without StructTag, json:\"-\" means nothing")
	require.Contains(t, string(plain), "Name")

	tagged, err := stampedecodec.Msgpack{StructTag: "json"}.Marshal(u)
	require.NoError(t, err)
	require.NotContains(t, string(tagged), "secret")
	require.NotContains(t, string(tagged), "note", "omitempty")
	require.Contains(t, string(tagged), "name")
	require.Contains(t, string(tagged), "m", "a msgpack tag wins over the fallback")

	var got user
	require.NoError(t, stampedecodec.Msgpack{StructTag: "json"}.Unmarshal(tagged, &got))
	require.Equal(t, user{Name: "ann", Both: "b"}, got)
}

func TestMsgpackTime(t *testing.T) {
	c := stampedecodec.Msgpack{}
	at := time.Date(2025, 12, 1, 9, 30, 0, 123456789, time.FixedZone("X", 3600))
	data, err := c.Marshal(at)
	require.NoError(t, err)
	var got time.Time
	require.NoError(t, c.Unmarshal(data, &got))
	require.True(t, got.Equal(at), "the instant is kept, to the nanosecond")
	require.Equal(t, time.Local, got.Location(), "the location is not")

	roundTrip(t, c, time.Time{}.UTC())
}

// TestMsgpackKeepsNoData checks what stampede.Codec requires: Unmarshal keeps nothing of data.
func TestMsgpackKeepsNoData(t *testing.T) {
	type blob struct {
		S string
		B []byte
	}
	c := stampedecodec.Msgpack{}
	data, err := c.Marshal(blob{S: "string", B: []byte("bytes")})
	require.NoError(t, err)
	var got blob
	require.NoError(t, c.Unmarshal(data, &got))
	clear(data)
	require.Equal(t, blob{S: "string", B: []byte("bytes")}, got)
}

// id has MessagePack methods with pointer receivers, as types that decode in place often do.
type id struct{ n int }

func (i *id) MarshalMsgpack() ([]byte, error) { return []byte{byte(i.n)}, nil }

func (i *id) UnmarshalMsgpack(b []byte) error {
	if len(b) != 1 {
		return errors.New("id: not one byte")
	}
	i.n = int(b[0])
	return nil
}

type withID struct {
	ID   id
	Name string
}

// TestMsgpackPointerMethods: a Cache marshals a V and unmarshals into a *V, so pointer methods
// must be used both ways; msgpack.Marshal refuses such a value.
func TestMsgpackPointerMethods(t *testing.T) {
	_, err := msgpack.Marshal(id{n: 7})
	require.Error(t, err, "msgpack alone: non-addressable")

	c := stampedecodec.Msgpack{}
	roundTrip(t, c, id{n: 7})
	roundTrip(t, c, withID{ID: id{n: 7}, Name: "x"})
	roundTrip(t, c, &withID{ID: id{n: 8}})
	roundTrip(t, c, []withID{{ID: id{n: 9}}})
}
