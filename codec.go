package stampede

import "encoding/json"

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
