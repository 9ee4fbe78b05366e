package stampedecodec

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/stampede-cache/stampede"
)

var _ stampede.Codec = (*Compressed)(nil)

// DefaultThreshold is the encoded size, in bytes, from which compressing is advised: below
// 1 KiB, S2 saves little (628 bytes of JSON compress to 542) for the time it costs on every
// write and every read from Redis. docs/codecs.md in the stampede repository has the
// measurements.
const DefaultThreshold = 1024

// DefaultMaxDecodedBytes is the largest value a [Compressed] decompresses unless
// [WithMaxDecodedBytes] says otherwise: 64 MiB.
const DefaultMaxDecodedBytes = 64 << 20

// A compressed payload begins with marker, a byte that never begins MessagePack (0xc1 is the
// one code the format leaves unused) or UTF-8 text (so neither JSON), then a format byte.
const (
	marker     = 0xc1
	formatRaw  = 0x00 // the inner codec's bytes as they are: those that begin with marker
	formatS2   = 0x01 // an S2 block of the inner codec's bytes
	headerSize = 2
)

// ErrCorrupt is returned, wrapped, by [Compressed.Unmarshal] for data that cannot have been
// written by a Compressed: a header it does not know, a block that does not decompress, or one
// that decompresses to more than the limit.
var ErrCorrupt = errors.New("stampedecodec: corrupt compressed value")

// Compressed is a [stampede.Codec] that wraps another and compresses its encodings of at least
// a threshold's size with S2 (github.com/klauspost/compress/s2, block format). It is safe for
// concurrent use if its inner Codec is. Make one with [Compress].
//
// Marshal stores an encoding below the threshold, or one that S2 does not make smaller, as the
// inner Codec wrote it, and a compressed one behind a 2-byte header. Unmarshal reads both, so the
// threshold can change, and a Codec can be wrapped, without breaking the values Redis holds:
// whatever the inner Codec wrote alone decodes, unless it begins with the byte 0xc1, which JSON
// and MessagePack never do. (An encoding that begins with 0xc1 is stored behind a header too.)
//
// S2 rather than zstd: every load compresses and every read from Redis decompresses, and S2
// does both faster (3 to 4 times, and about twice, on a 10 KiB value), with no encoder or
// decoder state to keep; zstd's smaller output (by a quarter) matters less for cache values,
// which Redis keeps only for a TTL. docs/codecs.md in the stampede repository has the numbers.
type Compressed struct {
	inner      stampede.Codec
	threshold  int
	maxDecoded int
}

// A CompressOption configures a [Compressed].
type CompressOption func(*Compressed)

// WithMaxDecodedBytes sets the largest value, in bytes, that Unmarshal decompresses: a larger
// one, or a corrupt header that claims one, is an error before anything is allocated. Default:
// [DefaultMaxDecodedBytes]. n <= 0 means the default.
func WithMaxDecodedBytes(n int) CompressOption {
	return func(c *Compressed) {
		if n > 0 {
			c.maxDecoded = n
		}
	}
}

// Compress returns a Codec that encodes values with inner and compresses the encodings of at
// least threshold bytes; threshold <= 0 compresses every one. [DefaultThreshold] suits most
// values. Compress panics if inner is nil.
func Compress(inner stampede.Codec, threshold int, opts ...CompressOption) *Compressed {
	if inner == nil {
		panic("stampedecodec: Compress: nil inner codec")
	}
	c := &Compressed{inner: inner, threshold: max(threshold, 0), maxDecoded: DefaultMaxDecodedBytes}
	for _, opt := range opts {
		opt(c)
	}
	return c
}

// Marshal encodes v with the inner Codec, and compresses the result if it is at least the
// threshold's size and S2 makes it smaller.
func (c *Compressed) Marshal(v any) ([]byte, error) {
	raw, err := c.inner.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(raw) >= c.threshold && len(raw) <= s2.MaxBlockSize {
		// Compress into a scratch buffer of the worst case's size, and return a copy of the
		// size of the result: the caller may keep what it gets.
		scratch := getBuffer(s2.MaxEncodedLen(len(raw)))
		block := s2.Encode(*scratch, raw)
		if headerSize+len(block) < len(raw) {
			out := make([]byte, headerSize+len(block))
			out[0], out[1] = marker, formatS2
			copy(out[headerSize:], block)
			putBuffer(scratch)
			return out, nil
		}
		putBuffer(scratch)
	}
	if len(raw) > 0 && raw[0] == marker {
		return append([]byte{marker, formatRaw}, raw...), nil
	}
	return raw, nil
}

// Unmarshal decompresses data if Marshal compressed it, and decodes the result with the inner
// Codec into v. The decompressed bytes are reused once the inner Codec returns, which
// [stampede.Codec] allows: its Unmarshal must not keep data.
func (c *Compressed) Unmarshal(data []byte, v any) error {
	if len(data) == 0 || data[0] != marker {
		return c.inner.Unmarshal(data, v)
	}
	if len(data) < headerSize {
		return fmt.Errorf("%w: %d-byte header", ErrCorrupt, len(data))
	}
	body := data[headerSize:]
	switch data[1] {
	case formatRaw:
		return c.inner.Unmarshal(body, v)
	case formatS2:
		n, err := s2.DecodedLen(body)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		if n > c.maxDecoded {
			return fmt.Errorf("%w: decompresses to %d bytes, limit %d", ErrCorrupt, n, c.maxDecoded)
		}
		buf := getBuffer(n)
		raw, err := s2.Decode(*buf, body)
		if err != nil {
			putBuffer(buf)
			return fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
		err = c.inner.Unmarshal(raw, v)
		putBuffer(buf)
		return err
	default:
		return fmt.Errorf("%w: unknown format %#x", ErrCorrupt, data[1])
	}
}

// Buffers of up to maxPooled bytes are reused; larger ones are left to the garbage collector,
// so that one large value does not pin its buffer in the pool.
const maxPooled = 64 << 10

var buffers sync.Pool // of *[]byte

// getBuffer returns a buffer of length n.
func getBuffer(n int) *[]byte {
	if n <= maxPooled {
		if b, ok := buffers.Get().(*[]byte); ok {
			if cap(*b) >= n {
				*b = (*b)[:n]
				return b
			}
		}
	}
	b := make([]byte, n)
	return &b
}

// putBuffer hands b back for reuse; nothing may use it afterwards.
func putBuffer(b *[]byte) {
	if cap(*b) <= maxPooled {
		buffers.Put(b)
	}
}
