package stampedecodec_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/stampede-cache/stampede"
	stampedecodec "github.com/stampede-cache/stampede/contrib/codec"
)

// The results, and the command that produces them, are in docs/benchmarks.md ("Codecs").

// benchCodecs are the codecs compared. The compressed ones have threshold 0, so that the
// 96-byte value shows what trying costs; with DefaultThreshold it costs what the bare codec does.
var benchCodecs = []struct {
	name  string
	codec stampede.Codec
}{
	{"json", stampede.JSONCodec{}},
	{"msgpack", stampedecodec.Msgpack{StructTag: "json"}},
	{"json+s2", stampedecodec.Compress(stampede.JSONCodec{}, 0)},
	{"msgpack+s2", stampedecodec.Compress(stampedecodec.Msgpack{StructTag: "json"}, 0)},
}

// BenchmarkCodecs measures each codec's time and allocations per value, and the size of what it
// stores (B/value), on a 96-byte and a 10 KiB value (sizes of their JSON encodings).
func BenchmarkCodecs(b *testing.B) {
	benchValue(b, "96B", smallValue())
	benchValue(b, "10KiB", profileValue())
}

func benchValue[V any](b *testing.B, size string, v V) {
	for _, c := range benchCodecs {
		data, err := c.codec.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(size+"/"+c.name+"/marshal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.codec.Marshal(v); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "B/value")
		})
		b.Run(size+"/"+c.name+"/unmarshal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var got V // as the cache decodes: into a new value each time
				if err := c.codec.Unmarshal(data, &got); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "B/value")
		})
	}
}

// BenchmarkS2VsZstd compares the compressors on the JSON encoding of the 10 KiB value: why
// Compressed uses S2 (docs/codecs.md).
func BenchmarkS2VsZstd(b *testing.B) {
	raw, err := json.Marshal(profileValue())
	if err != nil {
		b.Fatal(err)
	}
	fastest, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		b.Fatal(err)
	}
	def, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		b.Fatal(err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	compressors := []struct {
		name       string
		compress   func([]byte) []byte
		decompress func([]byte) ([]byte, error)
	}{
		{"s2", func(p []byte) []byte { return s2.Encode(nil, p) }, func(p []byte) ([]byte, error) { return s2.Decode(nil, p) }},
		{"s2-better", func(p []byte) []byte { return s2.EncodeBetter(nil, p) }, func(p []byte) ([]byte, error) { return s2.Decode(nil, p) }},
		{"zstd-fastest", func(p []byte) []byte { return fastest.EncodeAll(p, nil) }, func(p []byte) ([]byte, error) { return dec.DecodeAll(p, nil) }},
		{"zstd-default", func(p []byte) []byte { return def.EncodeAll(p, nil) }, func(p []byte) ([]byte, error) { return dec.DecodeAll(p, nil) }},
	}
	for _, c := range compressors {
		out := c.compress(raw)
		b.Run(c.name+"/compress", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				c.compress(raw)
			}
			b.ReportMetric(float64(len(out)), "B/value")
		})
		b.Run(c.name+"/decompress", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := c.decompress(out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out)), "B/value")
		})
	}
}

// BenchmarkS2BySize compresses and decompresses the JSON of the 10 KiB value cut to fewer posts:
// what S2 saves at each size (B/value, %stored) for its time, which DefaultThreshold is chosen
// from.
func BenchmarkS2BySize(b *testing.B) {
	p := profileValue()
	for _, n := range []int{0, 1, 2, 4, 8, 16, 32} {
		q := p
		q.Posts = p.Posts[:n]
		raw, err := json.Marshal(q)
		if err != nil {
			b.Fatal(err)
		}
		out := s2.Encode(nil, raw)
		b.Run(fmt.Sprintf("%05dB", len(raw)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s2.Decode(nil, s2.Encode(nil, raw)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out)), "B/value")
			b.ReportMetric(100*float64(len(out))/float64(len(raw)), "%stored")
		})
	}
}
