// Package envelope encodes the header that precedes every value stampede stores in Redis.
//
// One GET of a key returns everything a reader needs to decide what to do with it, so the value is
// wrapped in a fixed 24-byte header:
//
//	offset size field
//	0      1    version (1)
//	1      1    flags (negative entry, invalidated, fresh-for in seconds)
//	2      8    generation the value was written under, big-endian
//	10     6    written-at, Unix milliseconds, big-endian
//	16     4    fresh-for, milliseconds after written-at (seconds with FlagCoarse), big-endian
//	20     4    load duration, microseconds, big-endian, saturating
//	24     ...  payload (codec bytes), after a tag (length byte, bytes) with FlagTagged
//
// The Lua scripts of package scripts read the generation at offset 2 and set flag bits in place,
// so the layout is part of the wire protocol: change it only with a new version byte.
package envelope

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// Version is the first byte of every envelope this package writes.
const Version = 1

// HeaderSize is the length of the header that precedes the payload.
const HeaderSize = 24

// GenOffset is the offset of the 8-byte generation in an encoded envelope.
const GenOffset = 2

// Flags describe an entry.
type Flags uint8

const (
	// FlagNegative marks a cached "not found": the payload is empty.
	FlagNegative Flags = 1 << iota
	// FlagInvalidated marks a value that a soft invalidation made stale before its time.
	FlagInvalidated
	// flagCoarse says fresh-for is in seconds, for lifetimes over 49 days.
	flagCoarse
	// FlagTagged says the payload begins with a tag: one length byte and that many bytes, the
	// schema version of the value (see AppendTag).
	FlagTagged

	knownFlags = FlagNegative | FlagInvalidated | flagCoarse | FlagTagged
)

// ErrCorrupt reports bytes that are not an envelope this version can read.
var ErrCorrupt = errors.New("envelope: not a valid envelope")

// Header is the decoded metadata of an entry. Times are Unix nanoseconds, kept at the
// millisecond precision of the encoding.
type Header struct {
	Flags      Flags
	Gen        uint64
	WrittenAt  int64
	FreshUntil int64
	LoadTime   time.Duration
}

// Negative reports whether the entry is a cached "not found".
func (h Header) Negative() bool { return h.Flags&FlagNegative != 0 }

// Invalidated reports whether a soft invalidation marked the entry stale.
func (h Header) Invalidated() bool { return h.Flags&FlagInvalidated != 0 }

// Fresh reports whether the entry may be served as fresh at now (Unix nanoseconds).
func (h Header) Fresh(now int64) bool { return !h.Invalidated() && now < h.FreshUntil }

const (
	msec = int64(time.Millisecond)
	// maxMillis is the last millisecond whose nanoseconds fit an int64 (in 2262).
	maxMillis = math.MaxInt64 / msec
)

// Append appends the encoded header to dst. FreshUntil before WrittenAt is encoded as WrittenAt.
func Append(dst []byte, h Header) []byte {
	written := max(h.WrittenAt/msec, 0)
	freshFor := max(h.FreshUntil/msec-written, 0)
	flags := h.Flags &^ flagCoarse
	if freshFor > math.MaxUint32 {
		flags |= flagCoarse
		freshFor = min(freshFor/1000, math.MaxUint32)
	}
	load := min(max(h.LoadTime/time.Microsecond, 0), math.MaxUint32)

	var b [HeaderSize]byte
	b[0] = Version
	b[1] = byte(flags)
	binary.BigEndian.PutUint64(b[2:10], h.Gen)
	putUint48(b[10:16], uint64(written))
	binary.BigEndian.PutUint32(b[16:20], uint32(freshFor))
	binary.BigEndian.PutUint32(b[20:24], uint32(load))
	return append(dst, b[:]...)
}

// Parse decodes the header of b and returns it with the payload, which aliases b.
func Parse(b []byte) (Header, []byte, error) {
	if len(b) < HeaderSize || b[0] != Version || Flags(b[1])&^knownFlags != 0 {
		return Header{}, nil, ErrCorrupt
	}
	flags := Flags(b[1])
	written := int64(uint48(b[10:16]))
	freshFor := int64(binary.BigEndian.Uint32(b[16:20]))
	if flags&flagCoarse != 0 {
		freshFor *= 1000
	}
	if written+freshFor > maxMillis || flags&FlagNegative != 0 && len(b) > HeaderSize {
		return Header{}, nil, ErrCorrupt
	}
	h := Header{
		Flags:      flags &^ flagCoarse,
		Gen:        binary.BigEndian.Uint64(b[2:10]),
		WrittenAt:  written * msec,
		FreshUntil: (written + freshFor) * msec,
		LoadTime:   time.Duration(binary.BigEndian.Uint32(b[20:24])) * time.Microsecond,
	}
	return h, b[HeaderSize:], nil
}

// ParseString is Parse for a string, as go-redis returns replies; the payload is a substring.
func ParseString(s string) (Header, string, error) {
	if len(s) < HeaderSize {
		return Header{}, "", ErrCorrupt
	}
	var b [HeaderSize]byte
	copy(b[:], s)
	h, _, err := Parse(b[:])
	if err != nil {
		return Header{}, "", err
	}
	if h.Negative() && len(s) > HeaderSize {
		return Header{}, "", ErrCorrupt
	}
	return h, s[HeaderSize:], nil
}

func putUint48(b []byte, v uint64) {
	_ = b[5]
	b[0] = byte(v >> 40)
	b[1] = byte(v >> 32)
	binary.BigEndian.PutUint32(b[2:6], uint32(v))
}

func uint48(b []byte) uint64 {
	_ = b[5]
	return uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(binary.BigEndian.Uint32(b[2:6]))
}

// MaxTag is the length of the longest tag.
const MaxTag = 255

// AppendTag appends the tag that a payload with FlagTagged begins with. tag must not be longer
// than MaxTag.
func AppendTag(dst []byte, tag string) []byte {
	return append(append(dst, byte(len(tag))), tag...)
}

// CutTag splits the payload of an envelope with FlagTagged into its tag and the codec bytes.
func CutTag(payload []byte) (tag, rest []byte, err error) {
	if len(payload) == 0 || int(payload[0]) > len(payload)-1 {
		return nil, nil, ErrCorrupt
	}
	n := int(payload[0])
	return payload[1 : 1+n], payload[1+n:], nil
}
