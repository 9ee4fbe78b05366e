package stampedecodec

import (
	"bytes"
	"fmt"
	"reflect"
	"sync"

	"github.com/stampede-cache/stampede"
	"github.com/vmihailenco/msgpack/v5"
)

var _ stampede.Codec = Msgpack{}

// Msgpack is a [stampede.Codec] that encodes values with MessagePack, through
// github.com/vmihailenco/msgpack/v5. Its zero value writes what [msgpack.Marshal] writes, the
// encoding go-redis/cache uses. It is safe for concurrent use.
//
// Struct fields are named by their `msgpack` tag, else by their Go name; fields tagged
// `msgpack:"-"`, and unexported fields, are not stored. Time values keep their instant, not
// their location or monotonic reading: they decode in [time.Local] (the zero time in UTC).
// Decoded into an any, integers keep their integer type (int8 to int64, uint8 to uint64) and
// maps become map[string]any.
type Msgpack struct {
	// StructTag names a struct tag read for the fields that have no `msgpack` tag. Set it to
	// "json" for types tagged for encoding/json, so that their fields keep the names, the
	// omitempty, and, above all, the exclusions (`json:"-"`) their JSON encoding has. Empty:
	// `msgpack` tags only.
	StructTag string
}

// Marshal returns the MessagePack encoding of v.
//
// It encodes an addressable copy of v, so that the MarshalMsgpack and EncodeMsgpack methods of
// v's type, and of its fields' types, are called even when their receivers are pointers: a
// Cache passes Marshal a value and Unmarshal a pointer, and msgpack.Marshal would refuse such a
// value (so every load of it would fail), while Unmarshal would call the pointer methods.
func (m Msgpack) Marshal(v any) ([]byte, error) {
	if rv := reflect.ValueOf(v); rv.IsValid() && rv.Kind() != reflect.Pointer {
		p := reflect.New(rv.Type())
		p.Elem().Set(rv)
		v = p.Interface()
	}
	buf := encodeBuffers.Get().(*bytes.Buffer)
	buf.Reset()
	enc := msgpack.GetEncoder()
	enc.Reset(buf)
	enc.SetCustomStructTag(m.StructTag)
	err := enc.Encode(v)
	msgpack.PutEncoder(enc)
	var out []byte
	if err == nil {
		out = bytes.Clone(buf.Bytes()) // of the exact size: the caller may keep it
	}
	if buf.Cap() <= maxPooled {
		encodeBuffers.Put(buf)
	}
	return out, err
}

// encodeBuffers saves Marshal the buffer's growth: a 10 KiB encoding grew through 9 sizes.
var encodeBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Unmarshal decodes the MessagePack value in data into v, which must be a non-nil pointer.
// Bytes after the value are an error, as they are for encoding/json: they mean the data is not
// what Marshal wrote. Unmarshal copies what it keeps, so data may be reused once it returns.
//
// A panic of the msgpack package is returned as an error: it panics, for one, decoding a map
// into a field of a non-empty interface type, which no data can fill.
func (m Msgpack) Unmarshal(data []byte, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("msgpack: cannot decode into %T: %v", v, p)
		}
	}()
	r := bytes.NewReader(data)
	dec := msgpack.GetDecoder()
	dec.Reset(r)
	dec.SetCustomStructTag(m.StructTag)
	err = dec.Decode(v)
	msgpack.PutDecoder(dec)
	if err != nil {
		return err
	}
	if r.Len() > 0 {
		return fmt.Errorf("msgpack: %d bytes after the value", r.Len())
	}
	return nil
}
