package scripts

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// While Redis Cluster migrates a slot (MIGRATING on its node, IMPORTING on the target), it runs
// a command on several keys of the slot only on a node that has all of them: elsewhere it
// answers TRYAGAIN. A write's script declares keys that may legitimately not exist (a Delete of
// a deleted value, a Refresh of a key nobody leases), so it is refused for as long as the slot
// stays open, not only while a MIGRATE batch has split the keys of a user key. A command on a
// single key is routed normally: the source node serves the key if it has it, the target node
// (after ASK, ASKING) otherwise, and the key never moves back. So a write that is refused so
// falls back to single-key scripts (writeOpen), in the order that keeps the fence's guarantees.

// KEYS: gen. ARGV: gen ms. Advances the fence (creating it from the server clock when it is
// missing) and returns it.
var bumpScript = redis.NewScript(prelude + `
return bump(KEYS[1], ARGV[1])
`)

// KEYS: value. ARGV: what ('s' writes the envelope, 'i' marks the value stale, 'd' deletes it),
// generation, channel, user key, message kind (empty for none), force ('1' or '0'), envelope,
// value ms. Applies the write at the generation and publishes, unless the value holds a newer
// generation and force is not '1': then it returns that generation, and changes nothing.
// Returns 0 once applied.
var valueScript = redis.NewScript(prelude + `
local g = tonumber(ARGV[2])
local v = redis.call('GET', KEYS[1])
if ARGV[6] ~= '1' and v and #v >= 24 and string.byte(v, 1) == 1 then
  local cur = 0
  for i = 3, 10 do cur = cur * 256 + string.byte(v, i) end
  if cur > g then
    return cur
  end
end
if ARGV[1] == 's' then
  redis.call('SET', KEYS[1], stamp(ARGV[7], g), 'PX', ARGV[8])
elseif ARGV[1] == 'd' then
  redis.call('DEL', KEYS[1])
else
  invalidate(KEYS[1], g)
end
if ARGV[5] ~= '' then
  publish(ARGV[3], ARGV[5], g, ARGV[4])
end
return 0
`)

// KEYS: lock. ARGV: token, lease ms, channel, user key, generation. Takes the lease for a
// Refresh, whoever holds it, and publishes that the value was invalidated at the generation.
var takeScript = redis.NewScript(prelude + `
local now = now_ms()
hold(KEYS[1], ARGV[1], now + tonumber(ARGV[2]), false, now)
publish(ARGV[3], 'e', tonumber(ARGV[5]), ARGV[4])
return 1
`)

// runWrite runs a write's script s as runAcked does, but when Redis refuses it because its slot
// is open (TRYAGAIN), runs open instead, at once.
//
// On a cluster, without an Ack, the first try goes to the key's master itself (and to the node
// it answers ASK with): the cluster client would retry TRYAGAIN with back-off for up to ~170 ms
// of the caller's time before giving up, more than a short Redis timeout leaves for open.
// Anything but TRYAGAIN is left to the cluster client, which follows failovers, as before.
func runWrite(ctx context.Context, c Writer, a Ack, open func() (int64, error), s *redis.Script, keys []string, args ...any) (int64, error) {
	runs := func() *redis.Cmd { return s.Run(ctx, c, keys, args...) }
	var cmd *redis.Cmd
	if _, cluster := c.(*redis.ClusterClient); cluster && a.Replicas <= 0 {
		cmd = runWaited(ctx, c, a, s, keys, args)
		if err := cmd.Err(); err != nil && !tryAgain(err) {
			cmd = whileMoving(ctx, runs, nil, movingElsewhere)
		}
	} else {
		try := runs
		if a.Replicas > 0 {
			try = func() *redis.Cmd { return runWaited(ctx, c, a, s, keys, args) }
		}
		cmd = whileMoving(ctx, try, reload(ctx, c), movingElsewhere)
	}
	if tryAgain(cmd.Err()) && ctx.Err() == nil {
		return open()
	}
	return cmd.Int64()
}

// openWrite is what writeOpen does to the value, and to the lease for a Refresh.
type openWrite struct {
	what     string // 's', 'i' or 'd': see valueScript
	env      []byte // 's'
	ttl      time.Duration
	channel  string
	key      string
	token    string // a Refresh's: the lease is taken for it
	leaseTTL time.Duration
}

// writeOpen makes a write with single-key scripts, for a slot that is open:
//
//  1. It advances the fence (bumpScript). From then on every load in flight is refused, as by
//     the write's own script: a fill checks the fence and writes the value in one script, which
//     Redis runs only where all the key's keys are, so it is wholly before this step or after.
//  2. It writes the value at that generation, and publishes (valueScript). Readers see the
//     write from then on, as they would after the write's own script.
//  3. For a Refresh, it takes the lease and publishes (takeScript).
//
// Two writes made so (or one made so and one whose script ran) may reach the value in the other
// order than they advanced the fence. The one that comes second finds the other's newer
// generation on the value and goes back to step 1, so that its generation, and its message's, is
// the newest: an instance that holds the other's value in its L1 must drop it. (If the fence it
// then gets is still not newer than the value, the fence was lost or the value is foreign, and
// the value is overwritten all the same.) A Delete leaves no generation on the value: a write
// that comes after it writes at its older generation, as if made after the Delete, which it
// overlapped; instances that took the Delete's message keep no older generation in their L1,
// and read the value from Redis.
//
// Each step is acknowledged as a's replicas ask; a step taken but not confirmed does not stop
// the next, and the write returns ErrUnconfirmed (wrapped) when all are taken.
func writeOpen(ctx context.Context, c Writer, a Ack, k Keys, genTTL time.Duration, w openWrite) (int64, error) {
	var unconfirmed error
	step := func(cmd *redis.Cmd) (int64, error) {
		if err := cmd.Err(); errors.Is(err, ErrUnconfirmed) {
			unconfirmed = err
			n, ok := cmd.Val().(int64)
			if !ok {
				return 0, err
			}
			return n, nil
		}
		return cmd.Int64()
	}
	kind := "e"
	switch {
	case w.token != "":
		kind = "" // takeScript publishes once the lease is the Refresh's
	case w.what == "s":
		kind = "f"
	}
	// The single-key scripts publish at once: the buffer is another key, elsewhere.
	w.channel = channelOf(w.channel)
	var newer int64
	for {
		g, err := step(runAcked(ctx, c, a, bumpScript, []string{k.Gen}, ms(genTTL)))
		if err != nil {
			return 0, err
		}
		force := "0"
		if newer >= g {
			force = "1"
		}
		gen := strconv.FormatInt(g, 10)
		found, err := step(runAcked(ctx, c, a, valueScript, []string{k.Value},
			w.what, gen, w.channel, w.key, kind, force, w.env, ms(w.ttl)))
		if err != nil {
			return 0, err
		}
		if found != 0 {
			newer = found
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			continue
		}
		if w.token != "" {
			if _, err := step(runAcked(ctx, c, a, takeScript, []string{k.Lock},
				w.token, ms(w.leaseTTL), w.channel, w.key, gen)); err != nil {
				return 0, err
			}
		}
		return g, unconfirmed
	}
}
