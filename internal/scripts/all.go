package scripts

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// AllKey is the key of namespace N that dates its last InvalidateAll: N:{}:all. No user key's
// keys can be it: a user key is never empty, and one that begins with '}' is escaped (ValueKey).
func AllKey(namespace string) string {
	return namespace + ":{}:all"
}

// KEYS: the namespace's AllKey. ARGV: channel. Dates an invalidation of every value of the
// namespace now, in milliseconds of the server's clock (never earlier than the last one),
// publishes it, and returns it.
var invalidateAllScript = redis.NewScript(prelude + `
local t = redis.call('TIME')
local at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if last > at then at = last end
redis.call('SET', KEYS[1], string.format('%d', at))
redis.call('PUBLISH', ARGV[1], 'a' .. be(at, 8) .. be(0, 4))
return at
`)

// InvalidateAll dates an invalidation of every value of the namespace now, on the server's
// clock, tells every instance on channel, and returns the date in Unix milliseconds.
func InvalidateAll(ctx context.Context, c Writer, ack Ack, namespace, channel string) (int64, error) {
	return runAcked(ctx, c, ack, invalidateAllScript, []string{AllKey(namespace)}, channel).Int64()
}
