package scripts

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// slots is the number of hash slots of a Redis Cluster.
const slots = 16384

// Slot returns the hash slot of a Redis key, as Redis Cluster computes it: CRC16 (XMODEM) of its
// hash tag (the text between the first '{' and the next '}', if not empty) or of the whole key,
// modulo 16384.
func Slot(key string) int {
	for i := 0; i < len(key); i++ {
		if key[i] != '{' {
			continue
		}
		for j := i + 1; j < len(key); j++ {
			if key[j] == '}' {
				if j > i+1 {
					key = key[i+1 : j]
				}
				return int(crc16(key) % slots)
			}
		}
		break
	}
	return int(crc16(key) % slots)
}

// ReplicaKeys returns the keys of n replicas of key in namespace: N:{K#j}:replica. Each has a hash
// tag of its own, and replica i is placed in the i-th of n equal ranges of slots, so that on a
// cluster whose slots are spread evenly over its masters (as redis-cli --cluster create does) the
// replicas land on different masters. The suffix ":replica" ends no value, lease or fence key, so
// replica keys never collide with another user key's keys. (A K with a '}' keeps its own tag in
// every replica: its replicas share its slot, which is correct but spreads nothing.)
func ReplicaKeys(namespace, key string, n int) []string {
	keys := make([]string, 0, n)
	prefix := namespace + ":{"
	if key != "" && (key[0] == '}' || key[0] == 0) {
		prefix += "\x00"
	}
	prefix += key + "#"
	j := 0
	for i := range n {
		lo, hi := i*slots/n, (i+1)*slots/n
		first := ""
		for tries := 0; ; tries++ {
			j++
			k := prefix + strconv.Itoa(j) + "}:replica"
			if first == "" {
				first = k
			}
			if s := Slot(k); s >= lo && s < hi {
				keys = append(keys, k)
				break
			}
			if tries == 8*n+64 { // no suffix reaches the range (the tag is not ours): take any
				keys = append(keys, first)
				break
			}
		}
	}
	return keys
}

var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// crc16 is CRC-16/XMODEM, the checksum of Redis Cluster's key slots.
func crc16(s string) uint16 {
	var c uint16
	for i := 0; i < len(s); i++ {
		c = c<<8 ^ crcTable[byte(c>>8)^s[i]]
	}
	return c
}

// copyReplicaScript writes a replica unless the one in place has a newer generation, so that a
// late copy of an old read never replaces what a write put there. Generations are 8 big-endian
// bytes at the same offset in every envelope, so they compare as strings.
// KEYS: replica. ARGV: envelope, ms.
var copyReplicaScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and #v >= 10 and string.sub(v, 3, 10) > string.sub(ARGV[1], 3, 10) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// CopyReplica writes env to the replica rk for ttl, unless rk holds a newer generation.
func CopyReplica(ctx context.Context, c Scripter, rk string, env []byte, ttl time.Duration) error {
	return run(ctx, c, copyReplicaScript, []string{rk}, env, ms(ttl)).Err()
}

// CopyReplicaIn queues CopyReplica in a pipeline. It sends the script's text (a pipeline cannot
// fall back from EVALSHA to EVAL), which is short.
func CopyReplicaIn(ctx context.Context, pipe redis.Pipeliner, rk string, env []byte, ttl time.Duration) {
	copyReplicaScript.Eval(ctx, pipe, []string{rk}, env, ms(ttl))
}
