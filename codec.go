package stampede

import (
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/stampede-cache/stampede/internal/envelope"
)

// A Codec turns values into the bytes stored in Redis and back. Implementations must be safe
// for concurrent use. Unmarshal must not keep data after it returns.
//
// The cache calls Marshal with a value of its type V, and Unmarshal with a pointer to a new,
// zero V. A value only the instance that loaded it has seen, in its L1, went through neither:
// every other instance, and this one once the L1 entry is gone, gets what Unmarshal makes of
// what Marshal wrote. Whatever a Codec does not round-trip therefore differs between instances,
// silently. A value Marshal fails to encode fails its load (Get returns the error, and the
// failure back-off applies); bytes Unmarshal rejects are a miss, loaded again, so a V that never
// decodes is loaded by every read that misses the L1. Both count in Stats.CodecErrors.
//
// More codecs (MessagePack, and compression of any codec's large values) are in the module
// github.com/stampede-cache/stampede/contrib/codec; docs/codecs.md compares them.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONCodec encodes values with encoding/json. It is the default Codec.
//
// What JSON does not round-trip, and so what an instance reading a value from Redis sees
// differently from the instance that loaded it (see [Codec]):
//
//   - Unexported fields, and fields tagged `json:"-"`, are dropped silently: they decode as zero
//     values. So is a field of an embedded struct that an outer field of the same name hides.
//   - Strings are UTF-8: invalid bytes in a string become U+FFFD. Use []byte (base64 in JSON)
//     for binary data.
//   - A time.Time keeps its instant to the nanosecond, but not its monotonic clock reading nor
//     its Location: it decodes in UTC, or in a zone of fixed offset (Local if the offset is
//     Local's). Compare times with Time.Equal, not ==.
//   - In an any (a V of type any, a field, a map value), a number decodes as a float64, exact
//     only up to 2^53 (larger integers change), an object as a map[string]any, an array as a
//     []any: a type assertion that works on the loading instance fails on the others. A non-nil
//     field of a non-empty interface type does not decode at all: such a value is loaded again
//     by every read that misses the L1.
//   - MarshalJSON and MarshalText methods with pointer receivers are not called (Marshal gets a
//     value, which is not addressable), while UnmarshalJSON ones are (Unmarshal gets a pointer):
//     give such types value receivers for marshalling.
//   - A NaN or infinite float, a channel, a func, a complex number, a cycle, or a map whose keys
//     are not strings, integers or encoding.TextMarshalers cannot be encoded: the load fails.
//
// And what costs only bytes: []byte grows by a third (base64), a byte array ([32]byte) becomes
// a list of numbers, and <, > and & are escaped. Map keys are written sorted, so equal values
// encode to equal bytes; decoding does not depend on the order. Unknown fields are ignored and
// missing ones left zero, so a new version of a type reads values an older one wrote, with zero
// values for what it added: change WithNamespace when that is wrong.
type JSONCodec struct{}

// Marshal encodes v with json.Marshal.
func (JSONCodec) Marshal(v any) ([]byte, error) { return json.Marshal(v) }

// Unmarshal decodes data with json.Unmarshal.
func (JSONCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

// encode returns the envelope of v, refusing values over the size limit. A codec that fails or
// panics is counted in Stats.CodecErrors and logged.
func (c *Cache[V]) encode(h envelope.Header, v V) ([]byte, error) {
	var payload []byte
	var err error
	if p := userCall(func() { payload, err = c.codec.Marshal(v) }); p != nil {
		err = p
	}
	if err != nil {
		c.stats.Add(statCodecErrors)
		c.log.Warn("stampede: the codec cannot encode a value; it is not cached", "err", err)
		return nil, fmt.Errorf("stampede: encode: %w", err)
	}
	if n := envelope.HeaderSize + len(payload); n > c.maxValueBytes {
		return nil, fmt.Errorf("%w: %d bytes encoded, limit %d", ErrValueTooLarge, n, c.maxValueBytes)
	}
	if c.version == "" {
		env := make([]byte, 0, envelope.HeaderSize+len(payload))
		return append(envelope.Append(env, h), payload...), nil
	}
	h.Flags |= envelope.FlagTagged
	env := make([]byte, 0, envelope.HeaderSize+1+len(c.version)+len(payload))
	env = envelope.AppendTag(envelope.Append(env, h), c.version)
	return append(env, payload...), nil
}

// decode parses an envelope read from Redis. A value that is not an envelope, or whose payload
// the codec rejects, is a miss; the next fill overwrites it. So is a value of another schema
// version (WithVersion), which the caller then leaves alone if it is fresh (see foreign).
func (c *Cache[V]) decode(key string, raw []byte) (l1Entry[V], bool) {
	h, payload, err := envelope.Parse(raw)
	if err == nil && !h.Negative() {
		if payload, err = c.untag(h, payload); errors.Is(err, errForeign) {
			return l1Entry[V]{}, false // not unreadable: another version's (see WithVersion)
		}
	}
	if err == nil && !h.Negative() {
		var v V
		if p := userCall(func() { err = c.codec.Unmarshal(payload, &v) }); p != nil {
			err = p
		}
		if err == nil {
			return l1Entry[V]{value: v, h: h}, true
		}
		c.stats.Add(statCodecErrors)
	}
	if err != nil {
		c.log.Warn("stampede: treating an unreadable Redis value as a miss", "key", key, "err", err)
		return l1Entry[V]{}, false
	}
	return l1Entry[V]{h: h}, true
}

// seenGen returns the bytes of raw that the lease script compares to tell whether the value
// changed: the generation of an envelope, whatever stands there in anything else.
func seenGen(raw []byte) []byte {
	return raw[min(envelope.GenOffset, len(raw)):min(envelope.GenOffset+8, len(raw))]
}

// jsonLoses reports why JSONCodec would store nothing of a value of type t, or "" if it
// would: a struct with no exported field (through pointers) and no JSON or text marshaler
// encodes as {}, so every instance that reads it from Redis sees a zero value.
func jsonLoses(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.NumField() == 0 {
		return ""
	}
	for _, m := range []reflect.Type{reflect.TypeFor[json.Marshaler](), reflect.TypeFor[encoding.TextMarshaler]()} {
		if t.Implements(m) || reflect.PointerTo(t).Implements(m) {
			return ""
		}
	}
	for f := range t.Fields() {
		if f.IsExported() || f.Anonymous {
			return ""
		}
	}
	return fmt.Sprintf("%v has no exported field: JSONCodec stores it as {}, and instances that read it from Redis get a zero value", t)
}
