package scripts

import (
	"context"
	"encoding/binary"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Coalesced evictions. Every write tells every instance to evict the key from its L1. Sent one
// message per write, that costs Redis a message per write per subscribed instance. Instead, a
// write appends a record (the key's 6-byte hash and the generation) to its shard's eviction
// buffer, and one message per window carries every record of the window to every instance
// (FlushEvictions), on the shard's own channel: SPUBLISH, which on a cluster stays within the
// shard, or PUBLISH where Redis has no sharded pub/sub.
//
// The write that finds the buffer empty is told so (Written.Opened) and its caller flushes the
// buffer when the window ends. A buffer whose flusher is lost lives BufferTTL, and any instance
// that finds it older than a window flushes it (FlushEvictions with a minimum age). Waiters'
// notifications (a fill somebody waits for, a released lease, a failed load) are never
// buffered: they go out at once on the namespace's channel.

// BufferTTL is how long an eviction buffer lives after its first record, if nobody flushes it.
const BufferTTL = 60 * time.Second

// HashBytes is the length of a key's hash in an eviction record.
const HashBytes = 6

// KeyHash is the hash of a user key that eviction records carry: the low 48 bits of its 64-bit
// FNV-1a. Two keys of an L1 that share it are both evicted, which is safe.
func KeyHash(key string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= prime
	}
	return h & (1<<(8*HashBytes) - 1)
}

// Stripe is one eviction buffer of a namespace and its channel. Both share a hash tag, so on
// a cluster they live on one node, whose scripts write to the buffer. The tag is short and
// shared by every namespace (the channel's name goes with every message); no key of a user key
// ends in :evictions.
type Stripe struct {
	Buffer  string // N:{~j}:evictions
	Channel string // N:{~j}:ev
}

// Stripes returns the n stripes of namespace: stripe i's hash slot lies in the i-th of n equal
// ranges of the cluster's 16384 slots, so that on an evenly sharded cluster of at most n
// masters every master holds one. On a single node, one stripe does.
func Stripes(namespace string, n int) []Stripe {
	out := make([]Stripe, n)
	for i := range out {
		lo, hi := i*slots/n, (i+1)*slots/n
		for j := 0; ; j++ {
			tag := "~" + strconv.Itoa(j)
			if s := int(crc16(tag) % slots); s >= lo && s < hi {
				out[i] = Stripe{Buffer: namespace + ":{" + tag + "}:evictions", Channel: namespace + ":{" + tag + "}:ev"}
				break
			}
		}
	}
	return out
}

// Route is the channel argument a write's script takes: the namespace's channel alone (every
// eviction is published at once), or with the stripe whose buffer coalesces the evictions of
// key. On a cluster, the stripe must be on key's node; if it is not, the script publishes at
// once.
func Route(channel string, s *Stripe, key string) string {
	if s == nil {
		return channel
	}
	var h [8]byte
	binary.BigEndian.PutUint64(h[:], KeyHash(key))
	return channel + "\x00" + s.Buffer + "\x00" + string(h[8-HashBytes:])
}

// channelOf returns the channel of a Route.
func channelOf(route string) string {
	c, _, _ := strings.Cut(route, "\x00")
	return c
}

// KEYS: buffer. ARGV: channel, 's' (SPUBLISH) or 'p' (PUBLISH), minimum age in ms (0: any).
// Takes the buffer's records and publishes them as one message, unless the buffer is younger
// than the minimum age (its flusher is presumably alive): then returns -1. Returns the number of
// keys published. The message is 'b', the server's clock in microseconds (8 bytes), and per
// distinct key hash its newest generation, as the hash (6 bytes) and the zigzag varint of
// clock minus generation: generations are created from the same clock, so that is a few bytes.
var flushScript = redis.NewScript(prelude + `
local ttl = ` + strconv.Itoa(int(BufferTTL/time.Millisecond)) + `
if ARGV[3] ~= '0' then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 or left > ttl - tonumber(ARGV[3]) then
    return -1
  end
end
local b = redis.call('GET', KEYS[1])
if not b then
  return 0
end
redis.call('DEL', KEYS[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local newest, order = {}, {}
for i = 1, #b - 13, 14 do
  local h = string.sub(b, i, i + 5)
  local g = 0
  for j = i + 6, i + 13 do g = g * 256 + string.byte(b, j) end
  local seen = newest[h]
  if not seen then
    order[#order + 1] = h
    newest[h] = g
  elseif g > seen then
    newest[h] = g
  end
end
local out = {'b', be(now, 8)}
for _, h in ipairs(order) do
  local d = now - newest[h]
  local z
  if d >= 0 then z = 2 * d else z = -2 * d - 1 end
  local v = {h}
  while z >= 128 do
    local r = z % 128
    v[#v + 1] = string.char(r + 128)
    z = (z - r) / 128
  end
  v[#v + 1] = string.char(z)
  out[#out + 1] = table.concat(v)
end
if ARGV[2] == 's' then
  redis.call('SPUBLISH', ARGV[1], table.concat(out))
else
  redis.call('PUBLISH', ARGV[1], table.concat(out))
end
return #order
`)

// FlushEvictions publishes the records of s's buffer as one message on its channel, with
// SPUBLISH when sharded, else PUBLISH, and returns how many keys it named. With minAge > 0, it
// flushes only a buffer at least that old (another instance's window whose flusher is lost),
// and returns -1 for a younger one.
func FlushEvictions(ctx context.Context, c Scripter, s Stripe, sharded bool, minAge time.Duration) (int, error) {
	mode, age := "p", "0"
	if sharded {
		mode = "s"
	}
	if minAge > 0 {
		age = ms(minAge)
	}
	n, err := run(ctx, c, flushScript, []string{s.Buffer}, s.Channel, mode, age).Int64()
	return int(n), err
}

// Eviction is one record of an evictions message: the key with this hash was written or
// removed at generation Gen.
type Eviction struct {
	Hash uint64
	Gen  uint64
}

// ParseEvictions decodes an evictions message (see flushScript), appending its records to dst.
func ParseEvictions(dst []Eviction, s string) ([]Eviction, error) {
	if len(s) < 9 || s[0] != 'b' {
		return dst, errBadMessage
	}
	now := binary.BigEndian.Uint64([]byte(s[1:9]))
	for rest := s[9:]; rest != ""; {
		if len(rest) < HashBytes+1 {
			return dst, errBadMessage
		}
		var h uint64
		for i := range HashBytes {
			h = h<<8 | uint64(rest[i])
		}
		rest = rest[HashBytes:]
		z, n := binary.Uvarint([]byte(rest[:min(len(rest), binary.MaxVarintLen64)]))
		if n <= 0 {
			return dst, errBadMessage
		}
		rest = rest[n:]
		d := int64(z >> 1)
		if z&1 != 0 {
			d = -d - 1
		}
		dst = append(dst, Eviction{Hash: h, Gen: uint64(int64(now) - d)})
	}
	return dst, nil
}

// IsUnknownCommand reports whether err is Redis not knowing a command (SSUBSCRIBE before
// Redis 7, or an in-process Redis that lacks it).
func IsUnknownCommand(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "unknown command")
}
