package scripts

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede/internal/redistest"
)

// oldSetScript is the Set script before #17: a fence advanced by GET, PEXPIRE, INCR and PEXPIRE,
// and one PUBLISH per write.
var oldSetScript = redis.NewScript(`
local function be(n, width)
  local b = {}
  for i = width, 1, -1 do
    b[i] = n % 256
    n = (n - b[i]) / 256
  end
  return string.char(unpack(b))
end
local function gen(key, ttl)
  local g = redis.call('GET', key)
  if not g then
    local t = redis.call('TIME')
    g = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', key, g, 'PX', ttl)
  else
    redis.call('PEXPIRE', key, ttl)
  end
  return g
end
local function bump(key, ttl)
  gen(key, ttl)
  local g = redis.call('INCR', key)
  redis.call('PEXPIRE', key, ttl)
  return g
end
local g = bump(KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], string.sub(ARGV[1], 1, 2) .. be(g, 8) .. string.sub(ARGV[1], 11), 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[4], 'f' .. be(g, 8) .. be(#ARGV[5], 4) .. ARGV[5])
return g
`)

// BenchmarkWriteCost reports what a write costs Redis, as the time Redis spends in the command
// (INFO commandstats, usec_per_call: the script's work, not the network's), for a raw SET and the
// Set script before and after #17, with one subscriber on the channel. Run it against a Redis of
// your own: STAMPEDE_REDIS_ADDR=... go test -run - -bench WriteCost ./internal/scripts
func BenchmarkWriteCost(b *testing.B) {
	c := redistest.Real(b)
	ctx := context.Background()
	ns := "bench-cost"
	ps := c.Subscribe(ctx, Channel(ns))
	defer ps.Close()
	s := Stripes(ns, 1)[0]
	sub := c.Subscribe(ctx, s.Channel)
	defer sub.Close()
	env := make([]byte, 24+100)
	env[0] = 1
	key := func(i int) string { return "k" + strconv.Itoa(i%10000) }
	run := func(b *testing.B, cmd string, do func(i int)) {
		c.ConfigResetStat(ctx)
		for i := 0; b.Loop(); i++ {
			do(i)
		}
		b.StopTimer()
		stats := c.Info(ctx, "commandstats").Val()
		for line := range strings.SplitSeq(stats, "\n") {
			if !strings.HasPrefix(line, "cmdstat_"+cmd+":") {
				continue
			}
			for f := range strings.SplitSeq(strings.TrimSpace(line), ",") {
				if v, ok := strings.CutPrefix(f, "usec_per_call="); ok {
					us, _ := strconv.ParseFloat(v, 64)
					b.ReportMetric(us, "redis-µs/op")
				}
			}
		}
	}
	b.Run("raw SET", func(b *testing.B) {
		run(b, "set", func(i int) { c.Set(ctx, ns+":{"+key(i)+"}", env, time.Minute) })
	})
	emptyScript := redis.NewScript(prelude + "return 1")
	setOnlyScript := redis.NewScript(prelude + "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1")
	b.Run("the prelude alone", func(b *testing.B) {
		run(b, "evalsha", func(i int) { emptyScript.Run(ctx, c, []string{KeysFor(ns, key(i)).Value}) })
	})
	b.Run("SET in a script", func(b *testing.B) {
		run(b, "evalsha", func(i int) {
			setOnlyScript.Run(ctx, c, []string{KeysFor(ns, key(i)).Value}, env, 60000)
		})
	})
	b.Run("Set before #17", func(b *testing.B) {
		run(b, "evalsha", func(i int) {
			k := KeysFor(ns, key(i))
			oldSetScript.Run(ctx, c, []string{k.Value, k.Gen}, env, 60000, 60000, Channel(ns), key(i))
		})
	})
	b.Run("Set, window 0", func(b *testing.B) {
		run(b, "evalsha", func(i int) {
			_, _ = Set(ctx, c, Ack{}, KeysFor(ns, key(i)), env, time.Minute, time.Minute, Channel(ns), key(i))
		})
	})
	b.Run("Set, coalesced", func(b *testing.B) {
		run(b, "evalsha", func(i int) {
			_, _ = Set(ctx, c, Ack{}, KeysFor(ns, key(i)), env, time.Minute, time.Minute, Route(Channel(ns), &s, key(i)), key(i))
			if i%10 == 9 {
				_, _ = FlushEvictions(ctx, c, s, true, 0) // one window per 10 writes
			}
		})
	})
}
