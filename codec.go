package stampede

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stampede-cache/stampede/internal/envelope"
)

// A Codec turns values into the bytes stored in Redis and back. Implementations must be safe
// for concurrent use. Unmarshal must not keep data after it returns.
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSONCodec encodes values with encoding/json. It is the default Codec.
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
