package stampedecodec_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	stampedecodec "github.com/stampede-cache/stampede/contrib/codec"
)

// compressed tells whether data is a compressed payload: behind the header 0xc1 0x01.
func compressed(data []byte) bool { return len(data) > 2 && data[0] == 0xc1 && data[1] == 0x01 }

func TestCompressRoundTrip(t *testing.T) {
	for _, inner := range []stampede.Codec{stampede.JSONCodec{}, stampedecodec.Msgpack{}} {
		for _, threshold := range []int{-1, 0, 1, 100, stampedecodec.DefaultThreshold, 1 << 20} {
			c := stampedecodec.Compress(inner, threshold)
			roundTrip(t, c, smallValue())
			roundTrip(t, c, profileValue())
			roundTrip(t, c, small{})
			roundTrip(t, c, "")
			roundTrip(t, c, strings.Repeat("abc", 1000))
			roundTrip(t, c, (*profile)(nil))
		}
	}
}

func TestCompressCompressesLargeValues(t *testing.T) {
	for _, inner := range []stampede.Codec{stampede.JSONCodec{}, stampedecodec.Msgpack{}} {
		c := stampedecodec.Compress(inner, stampedecodec.DefaultThreshold)
		raw, err := inner.Marshal(profileValue())
		require.NoError(t, err)
		data, err := c.Marshal(profileValue())
		require.NoError(t, err)
		require.True(t, compressed(data))
		require.Less(t, len(data), len(raw)*3/4, "%T: %d bytes compressed to %d", inner, len(raw), len(data))

		raw, err = inner.Marshal(smallValue())
		require.NoError(t, err)
		data, err = c.Marshal(smallValue())
		require.NoError(t, err)
		require.Equal(t, raw, data, "below the threshold: the inner codec's bytes as they are")
	}
}

// TestCompressThresholdEdge: an encoding of threshold-1 bytes is stored as it is, one of
// threshold bytes compressed.
func TestCompressThresholdEdge(t *testing.T) {
	const threshold = 100
	c := stampedecodec.Compress(stampede.JSONCodec{}, threshold)
	below := strings.Repeat("a", threshold-3) // JSON adds the quotes: threshold-1 bytes
	at := strings.Repeat("a", threshold-2)

	data, err := c.Marshal(below)
	require.NoError(t, err)
	require.Equal(t, `"`+below+`"`, string(data))
	roundTrip(t, c, below)

	data, err = c.Marshal(at)
	require.NoError(t, err)
	require.True(t, compressed(data), "%q", data)
	require.Less(t, len(data), threshold)
	roundTrip(t, c, at)

	// Threshold 0 tries every value, and keeps those S2 does not shrink as they are.
	c = stampedecodec.Compress(stampede.JSONCodec{}, 0)
	data, err = c.Marshal(1)
	require.NoError(t, err)
	require.Equal(t, "1", string(data))
}

// TestCompressThresholdChange: values written under any threshold, or by the inner codec
// alone, decode under any other, so the threshold can change, and a codec be wrapped, while
// Redis holds values.
func TestCompressThresholdChange(t *testing.T) {
	values := []any{smallValue(), profileValue()}
	for _, inner := range []stampede.Codec{stampede.JSONCodec{}, stampedecodec.Msgpack{}} {
		writers := []stampede.Codec{inner}
		readers := []stampede.Codec{}
		for _, threshold := range []int{0, 100, stampedecodec.DefaultThreshold, 1 << 20} {
			c := stampedecodec.Compress(inner, threshold)
			writers = append(writers, c)
			readers = append(readers, c)
		}
		for _, w := range writers {
			for _, r := range readers {
				data, err := w.Marshal(values[0])
				require.NoError(t, err)
				var s small
				require.NoError(t, r.Unmarshal(data, &s))
				require.Equal(t, values[0], s)

				data, err = w.Marshal(values[1])
				require.NoError(t, err)
				var p profile
				require.NoError(t, r.Unmarshal(data, &p))
				require.Equal(t, values[1], p)
			}
		}
	}
}

func TestCompressIncompressible(t *testing.T) {
	random := make([]byte, 4096)
	for i := range random {
		random[i] = byte(rand.Uint32())
	}
	c := stampedecodec.Compress(stampedecodec.Msgpack{}, 0)
	raw, err := stampedecodec.Msgpack{}.Marshal(random)
	require.NoError(t, err)
	data, err := c.Marshal(random)
	require.NoError(t, err)
	require.Equal(t, raw, data, "S2 does not shrink random bytes: stored as they are")
	roundTrip(t, c, random)
}

// markerCodec writes encodings that begin with the byte that marks compressed payloads, as a
// codec other than JSON and MessagePack may.
type markerCodec struct{}

func (markerCodec) Marshal(v any) ([]byte, error) {
	return append([]byte{0xc1}, *v.(*string)...), nil
}

func (markerCodec) Unmarshal(data []byte, v any) error {
	if len(data) == 0 || data[0] != 0xc1 {
		return errors.New("markerCodec: no marker")
	}
	*v.(*string) = string(data[1:])
	return nil
}

func TestCompressInnerEncodingBeginsWithMarker(t *testing.T) {
	for _, threshold := range []int{0, 1 << 20} {
		c := stampedecodec.Compress(markerCodec{}, threshold)
		for _, s := range []string{"", "x", "\x01abc", strings.Repeat("z", 5000), "\x00"} {
			data, err := c.Marshal(&s)
			require.NoError(t, err)
			var got string
			require.NoError(t, c.Unmarshal(data, &got))
			require.Equal(t, s, got)
		}
	}
}

func TestCompressNilAndZero(t *testing.T) {
	c := stampedecodec.Compress(stampede.JSONCodec{}, 0)
	data, err := c.Marshal(nil)
	require.NoError(t, err)
	require.Equal(t, "null", string(data))
	p := &small{ID: 1}
	require.NoError(t, c.Unmarshal(data, &p))
	require.Nil(t, p)

	require.Panics(t, func() { stampedecodec.Compress(nil, 0) })
}

func TestCompressCorrupt(t *testing.T) {
	c := stampedecodec.Compress(stampede.JSONCodec{}, 0)
	good, err := c.Marshal(profileValue())
	require.NoError(t, err)
	require.True(t, compressed(good))
	var p profile

	corrupt := func(data []byte, why string) {
		t.Helper()
		err := c.Unmarshal(data, &p)
		require.ErrorIs(t, err, stampedecodec.ErrCorrupt, why)
	}
	corrupt([]byte{0xc1}, "a header alone")
	corrupt([]byte{0xc1, 0x01}, "no block")
	corrupt([]byte{0xc1, 0x07, 'x'}, "an unknown format")
	corrupt([]byte{0xc1, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "a length that is no varint")
	for n := 3; n < len(good); n++ {
		corrupt(good[:n], "truncated")
	}
	corrupt(append(bytes.Clone(good), 0, 0, 0), "bytes after the block")

	// A block that claims more than the limit is refused before it is allocated.
	limited := stampedecodec.Compress(stampede.JSONCodec{}, 0, stampedecodec.WithMaxDecodedBytes(1000))
	err = limited.Unmarshal(good, &p)
	require.ErrorIs(t, err, stampedecodec.ErrCorrupt)
	require.ErrorContains(t, err, "limit 1000")
	huge := []byte{0xc1, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f} // claims 4 GiB
	corrupt(huge, "4 GiB claimed")

	// Bytes without the header are the inner codec's, and its errors are its own.
	err = c.Unmarshal([]byte("{"), &p)
	require.Error(t, err)
	require.NotErrorIs(t, err, stampedecodec.ErrCorrupt)
	require.Error(t, c.Unmarshal(nil, &p))

	// A payload stored as it is behind a header (format 0) is the inner codec's too.
	require.Error(t, c.Unmarshal([]byte{0xc1, 0x00, '{'}, &p))
}

func TestCompressInnerErrors(t *testing.T) {
	c := stampedecodec.Compress(stampede.JSONCodec{}, 0)
	_, err := c.Marshal(make(chan int))
	require.Error(t, err)
}

// TestCompressConcurrent shares one codec between goroutines, as a Cache does: the buffers it
// reuses must never be shared (go test -race).
func TestCompressConcurrent(t *testing.T) {
	c := stampedecodec.Compress(stampedecodec.Msgpack{}, 0)
	want := profileValue()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				v := want
				v.ID = int64(g*1000 + i)
				data, err := c.Marshal(v)
				if err != nil {
					t.Error(err)
					return
				}
				var got profile
				if err := c.Unmarshal(data, &got); err != nil {
					t.Error(err)
					return
				}
				if got.ID != v.ID || got.Posts[31].Body != want.Posts[31].Body {
					t.Errorf("decoded %d, want %d", got.ID, v.ID)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestCompressKeepsNoData: a decoded value shares nothing with data, nor with the buffer the
// codec decompressed it into and reuses.
func TestCompressKeepsNoData(t *testing.T) {
	c := stampedecodec.Compress(stampedecodec.Msgpack{}, 0)
	first, err := c.Marshal(profileValue())
	require.NoError(t, err)
	var got profile
	require.NoError(t, c.Unmarshal(first, &got))
	clear(first)

	other := profileValue()
	for i := range other.Posts {
		other.Posts[i].Body = strings.Repeat("x", len(other.Posts[i].Body))
	}
	second, err := c.Marshal(other)
	require.NoError(t, err)
	var scratch profile
	require.NoError(t, c.Unmarshal(second, &scratch))

	require.Equal(t, profileValue(), got)
}
