package envelope

import (
	"bytes"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	written := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).UnixNano()
	tests := []struct {
		name string
		h    Header
	}{
		{"plain", Header{Gen: 42, WrittenAt: written, FreshUntil: written + int64(time.Minute), LoadTime: 20 * time.Millisecond}},
		{"negative", Header{Flags: FlagNegative, Gen: 1, WrittenAt: written, FreshUntil: written + int64(time.Second)}},
		{"latest", Header{WrittenAt: maxMillis * msec, FreshUntil: maxMillis * msec}},
		{"invalidated", Header{Flags: FlagInvalidated, Gen: math.MaxUint64, WrittenAt: written, FreshUntil: written}},
		{"coarse", Header{Gen: 7, WrittenAt: written, FreshUntil: written + int64(90*24*time.Hour)}},
		{"zero", Header{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := []byte(`{"name":"celeb"}`)
			if tt.h.Negative() {
				payload = nil
			}
			b := append(Append(nil, tt.h), payload...)
			require.Len(t, b, HeaderSize+len(payload))

			got, rest, err := Parse(b)
			require.NoError(t, err)
			require.Equal(t, tt.h, got)
			require.Equal(t, string(payload), string(rest))

			gotS, restS, err := ParseString(string(b))
			require.NoError(t, err)
			require.Equal(t, got, gotS)
			require.Equal(t, string(payload), restS)
		})
	}
}

func TestAppendClamps(t *testing.T) {
	h := Header{WrittenAt: 5 * msec, FreshUntil: 1 * msec, LoadTime: 100 * 24 * time.Hour}
	got, _, err := Parse(Append(nil, h))
	require.NoError(t, err)
	require.Equal(t, got.WrittenAt, got.FreshUntil, "fresh-until before written-at encodes as written-at")
	require.Equal(t, time.Duration(math.MaxUint32)*time.Microsecond, got.LoadTime, "load time saturates")
}

func TestParseRejects(t *testing.T) {
	valid := Append(nil, Header{Gen: 1, WrittenAt: msec, FreshUntil: 2 * msec})
	tests := map[string][]byte{
		"empty":            nil,
		"short":            valid[:HeaderSize-1],
		"version":          append([]byte{2}, valid[1:]...),
		"unknown flag":     append([]byte{Version, 0x80}, valid[2:]...),
		"negative payload": append(Append(nil, Header{Flags: FlagNegative}), 'x'),
		"plain text":       []byte("a value written by another program"),
		"after 2262":       []byte("\x01\x020000000000000000000000"),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			_, _, err := Parse(b)
			require.ErrorIs(t, err, ErrCorrupt)
			_, _, err = ParseString(string(b))
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

func TestFresh(t *testing.T) {
	h := Header{WrittenAt: 0, FreshUntil: 10}
	require.True(t, h.Fresh(9))
	require.False(t, h.Fresh(10))
	h.Flags |= FlagInvalidated
	require.False(t, h.Fresh(0))
}

// FuzzParse checks that no input panics the decoder, that Parse and ParseString agree, and that
// whatever decodes re-encodes to a header that decodes to the same value.
func FuzzParse(f *testing.F) {
	f.Add(Append(nil, Header{Gen: 3, WrittenAt: 1e15, FreshUntil: 2e15, LoadTime: time.Second}))
	f.Add(append(Append(nil, Header{Flags: FlagInvalidated, Gen: 9}), "payload"...))
	f.Add([]byte("not an envelope"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := Parse(b)
		hs, payloadS, errS := ParseString(string(b))
		if (err == nil) != (errS == nil) {
			t.Fatalf("Parse err %v, ParseString err %v", err, errS)
		}
		if err != nil {
			return
		}
		if h != hs || string(payload) != payloadS {
			t.Fatalf("Parse %+v %q, ParseString %+v %q", h, payload, hs, payloadS)
		}
		again, rest, err := Parse(append(Append(nil, h), payload...))
		if err != nil {
			t.Fatalf("re-encoded %+v does not parse: %v", h, err)
		}
		if again != h || !bytes.Equal(rest, payload) {
			t.Fatalf("re-encoded %+v parses as %+v", h, again)
		}
	})
}
