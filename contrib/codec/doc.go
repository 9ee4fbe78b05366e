// Package stampedecodec provides [stampede.Codec] implementations beyond the default JSON:
// [Msgpack], which encodes with MessagePack (github.com/vmihailenco/msgpack/v5, the encoding
// go-redis/cache uses), and [Compressed], which wraps any Codec and compresses, with S2
// (github.com/klauspost/compress/s2), the encodings of at least a threshold's size.
//
//	c, err := stampede.New[Profile](rdb,
//		stampede.WithCodec(stampedecodec.Compress(stampedecodec.Msgpack{}, stampedecodec.DefaultThreshold)))
//
// # Changing codecs
//
// Changing a cache's codec changes what it writes, not what Redis already holds. A value the new
// codec cannot decode is a miss (counted in [stampede.Stats].CodecErrors) and is loaded again, so
// a rolling deploy that switches codecs costs up to one load per key and per version while old
// and new instances overwrite each other's values. Give the new codec its own namespace
// ([stampede.WithNamespace]) to keep the two apart. [Compressed] is the exception: it decodes what
// its inner Codec wrote alone, so wrapping a Codec, and changing the threshold, cost nothing.
//
// # Choosing
//
// MessagePack is smaller than JSON, decodes about 3 times faster (every read from Redis
// decodes), and keeps what JSON loses: invalid UTF-8 in strings, integers in an any as
// integers, NaN and infinities. It drops unexported fields as JSON does, and reads `msgpack`
// struct tags, not `json` ones, unless [Msgpack].StructTag says so. S2 pays off from about
// 1 KiB. The measurements, and the traps of each codec, are in docs/codecs.md and
// docs/benchmarks.md in the stampede repository.
package stampedecodec
