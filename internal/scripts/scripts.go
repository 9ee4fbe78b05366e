package scripts

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// prelude holds the helpers every script shares. Generations stay below 2^53, so Lua's doubles
// hold them exactly, and they are compared as the decimal strings Redis stores.
const prelude = `
-- gen returns the fence of a key, creating it from the server clock (in microseconds) when it
-- is missing, so that a fence never goes back when its key expires or Redis restarts empty.
-- Either way the fence lives ttl from now, longer than any load that reads it now can run.
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

-- bump advances the fence, so that every load that read the old one is refused. The common
-- case is one INCR: only a missing fence (INCR made it 1) is recreated from the clock.
local function bump(key, ttl)
  local g = redis.call('INCR', key)
  if g == 1 then
    local t = redis.call('TIME')
    g = tonumber(t[1]) * 1000000 + tonumber(t[2]) + 1
    redis.call('SET', key, string.format('%d', g), 'PX', ttl)
  else
    redis.call('PEXPIRE', key, ttl)
  end
  return g
end

local function be(n, width)
  local b = {}
  for i = width, 1, -1 do
    b[i] = n % 256
    n = (n - b[i]) / 256
  end
  return string.char(unpack(b))
end

-- stamp writes generation g into an envelope (bytes 3 to 10).
local function stamp(env, g)
  return string.sub(env, 1, 2) .. be(g, 8) .. string.sub(env, 11)
end

-- The channel argument of a script is a route (see Route): the namespace's channel, and when
-- the namespace coalesces evictions, a NUL, the key of its shard's eviction buffer, a NUL and
-- the user key's 6-byte hash.
local function channel_of(route)
  local i = string.find(route, '\0', 1, true)
  if i then
    return string.sub(route, 1, i - 1)
  end
  return route
end

-- tell publishes a message about key at once, on the namespace's channel: for waiters, whose
-- notifications are never delayed. extra follows the key (a Filled message's envelope).
local function tell(route, kind, g, key, extra)
  redis.call('PUBLISH', channel_of(route), kind .. be(g, 8) .. be(#key, 4) .. key .. (extra or ''))
end

-- opened is set when publish found its eviction buffer empty: the script's caller then flushes
-- it at the end of the window (done returns the generation negated to say so).
local opened = false

-- publish announces that key was written ('f') or removed ('e') at g, so that every L1 evicts
-- it. With a plain channel as the route, at once. With a buffered route, it appends the key's
-- hash and g to the shard's buffer (BufferTTL ms to live), which one message per window
-- carries (FlushEvictions). If the buffer is not on this node (a cluster whose slots moved
-- since the caller chose it), the message goes out at once.
local function publish(route, kind, g, key)
  local i = string.find(route, '\0', 1, true)
  if i then
    local j = string.find(route, '\0', i + 1, true)
    local buf = string.sub(route, i + 1, j - 1)
    local rec = string.sub(route, j + 1) .. be(g, 8)
    local n = redis.pcall('APPEND', buf, rec)
    if type(n) == 'number' then
      if n == #rec then
        redis.call('PEXPIRE', buf, 60000)
        opened = true
      end
      return
    end
  end
  tell(route, kind, g, key)
end

-- done is what a write returns: g, negated when the write opened its buffer's window.
local function done(g)
  if opened then
    return -g
  end
  return g
end

-- A lease, N:{K}:lock, holds 'token|expiry|waited': expiry in Unix milliseconds of the
-- server's clock, waited '1' once somebody waits for the holder's fill. The expiry lives in
-- the value, and the key's own TTL only collects garbage, an hour or more: an eviction policy
-- that takes the shortest TTLs first (volatile-ttl) would otherwise take leases first, and let
-- a second load start while the first runs.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- holder returns the token of the lease in force on lock, its expiry, whether somebody waits,
-- and whether it is a plain token (a lease of an older version, whose expiry is its TTL); nil
-- when none is in force.
local function holder(lock, now)
  local v = redis.call('GET', lock)
  if not v then
    return nil
  end
  local token, exp, w = string.match(v, '^(.*)|(%d+)|([01])$')
  if not token then
    local left = redis.call('PTTL', lock)
    if left < 0 then left = 0 end
    return v, now + left, false, true
  end
  exp = tonumber(exp)
  if exp <= now then
    return nil
  end
  return token, exp, w == '1', false
end

local function hold(lock, token, exp, waited, now)
  local w = '0'
  if waited then w = '1' end
  redis.call('SET', lock, token .. '|' .. string.format('%d', exp) .. '|' .. w,
    'PX', math.max(3600000, 2 * (exp - now)))
end

-- mine reports whether the lock's value, expired or not, is token's lease.
local function mine(v, token)
  return v and token ~= '' and (v == token or string.sub(v, 1, #token + 1) == token .. '|')
end

local function release(lock, token)
  if mine(redis.call('GET', lock), token) then
    redis.call('DEL', lock)
    return true
  end
  return false
end

-- invalidate marks an envelope stale (flag bit 2) at generation g, keeping its TTL.
local function invalidate(key, g)
  local v = redis.call('GET', key)
  if v and #v >= 24 and string.byte(v, 1) == 1 then
    local f = string.byte(v, 2)
    if f % 4 < 2 then f = f + 2 end
    redis.call('SET', key, string.char(1, f) .. be(g, 8) .. string.sub(v, 11), 'KEEPTTL')
  end
end
`

// KEYS: value, lock, gen, wait. ARGV: token, lease ms, seen generation bytes (empty if none),
// lock ('1' or '0'), gen ms. Returns {0, value} if the value changed since the caller read it,
// {1, fence} if the caller may load (holding the lease when lock is '1'), {2, lease ms left} if
// another holds it; then the caller waits, and the lease's waited mark tells the holder's fill
// to notify. (The wait key does so for a lease of an older version.)
// It is idempotent: run again with the same token (a client's retry after a lost reply), it
// finds the lease its own and answers {1, fence} again.
const leaseBody = `
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 3, 10) ~= ARGV[3] then
  return {0, v}
end
-- While a load runs, its fence must survive an eviction policy that takes short TTLs first:
-- its loss would refuse the load's fill and start another.
local loading = math.max(tonumber(ARGV[5]), 3600000)
if ARGV[4] == '0' then
  return {1, gen(KEYS[3], loading)}
end
local now = now_ms()
local token, exp, waited, plain = holder(KEYS[2], now)
if not token or token == ARGV[1] then
  hold(KEYS[2], ARGV[1], now + tonumber(ARGV[2]), token == ARGV[1] and waited, now)
  return {1, gen(KEYS[3], loading)}
end
if plain then
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[2])
elseif not waited then
  hold(KEYS[2], token, exp, true, now)
end
return {2, exp - now}
`

var leaseScript = redis.NewScript(prelude + leaseBody)

// KEYS: value, lock, gen, wait. ARGV: token (empty without a lease), fence, envelope, value
// ms, gen ms, channel, user key, the largest envelope a message carries. Writes the envelope if
// the fence is unchanged and the caller still holds its lease, and returns its generation;
// else returns false. (A lease that is gone, taken by a Refresh, or lost with a Redis restarted
// from a snapshot whose fence happens to match, refuses the fill.) Either way it releases the caller's lease and
// tells waiters. The Filled message goes out only if somebody may need it: a waiter, or an
// instance holding the old value in its L1. (The first load of a key nobody waits for, the
// common miss, publishes nothing.) When somebody waits, it carries the envelope if it is small.
const fillBody = `
local lease = redis.call('GET', KEYS[2])
if redis.call('GET', KEYS[3]) ~= ARGV[2] or ARGV[1] ~= '' and not mine(lease, ARGV[1]) then
  if release(KEYS[2], ARGV[1]) then tell(ARGV[6], 'r', 0, ARGV[7]) end
  return false
end
local had = redis.call('EXISTS', KEYS[1]) == 1
local waited = mine(lease, ARGV[1]) and string.sub(lease, -2) == '|1'
waited = redis.call('DEL', KEYS[4]) == 1 or waited
local g = bump(KEYS[3], ARGV[5])
local env = stamp(ARGV[3], g)
redis.call('SET', KEYS[1], env, 'PX', ARGV[4])
release(KEYS[2], ARGV[1])
if waited and #env <= tonumber(ARGV[8]) then
  -- The waiters get the value with the message: under memory pressure Redis may evict it
  -- before they read it, and they would load again.
  tell(ARGV[6], 'f', g, ARGV[7], env)
elseif waited then
  tell(ARGV[6], 'f', g, ARGV[7])
elseif had then
  publish(ARGV[6], 'f', g, ARGV[7])
end
return done(g)
`

var fillScript = redis.NewScript(prelude + fillBody)

// KEYS: lock. ARGV: token, channel, message. Deletes the lease if the caller holds it, and
// then publishes the message.
const releaseBody = `
if release(KEYS[1], ARGV[1]) then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0
`

var releaseScript = redis.NewScript(prelude + releaseBody)

// KEYS: lock. ARGV: token, lease ms. Extends the lease if the caller holds it.
const extendBody = `
local now = now_ms()
local token, _, waited = holder(KEYS[1], now)
if token == ARGV[1] then
  hold(KEYS[1], token, now + tonumber(ARGV[2]), waited, now)
  return 1
end
return 0
`

var extendScript = redis.NewScript(prelude + extendBody)

// KEYS: value, gen. ARGV: envelope, value ms, gen ms, channel, user key. Write-through.
const setBody = `
local g = bump(KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], stamp(ARGV[1], g), 'PX', ARGV[2])
publish(ARGV[4], 'f', g, ARGV[5])
return done(g)
`

var setScript = redis.NewScript(prelude + setBody)

// KEYS: value, gen. ARGV: gen ms, channel, user key. Soft invalidation.
const invalidateBody = `
local g = bump(KEYS[2], ARGV[1])
invalidate(KEYS[1], g)
publish(ARGV[2], 'e', g, ARGV[3])
return done(g)
`

var invalidateScript = redis.NewScript(prelude + invalidateBody)

// KEYS: value, gen. ARGV: gen ms, channel, user key. Hard delete.
const deleteBody = `
redis.call('DEL', KEYS[1])
local g = bump(KEYS[2], ARGV[1])
publish(ARGV[2], 'e', g, ARGV[3])
return done(g)
`

var deleteScript = redis.NewScript(prelude + deleteBody)

// KEYS: value, lock, gen. ARGV: token, lease ms, gen ms, channel, user key. Starts a refresh:
// fences out every load in flight, marks the value stale (it is still served), and takes the
// lease whoever holds it. Returns the fence to fill under.
var refreshScript = redis.NewScript(prelude + `
local g = bump(KEYS[3], ARGV[3])
invalidate(KEYS[1], g)
local now = now_ms()
hold(KEYS[2], ARGV[1], now + tonumber(ARGV[2]), false, now)
publish(ARGV[4], 'e', g, ARGV[5])
return done(g)
`)

// MaxMessageValue is the largest envelope a Filled message carries to the waiters of a fill.
const MaxMessageValue = 16 << 10

// Scripter is the part of a go-redis client the scripts need.
type Scripter = redis.Scripter

// LeaseState is the outcome of Lease.
type LeaseState int

const (
	// Changed: the value differs from the one the caller saw; it is in LeaseResult.Value.
	Changed LeaseState = iota
	// Acquired: the caller may load and fill under LeaseResult.Fence.
	Acquired
	// Held: another caller holds the lease for LeaseResult.Remaining.
	Held
)

// LeaseResult is what Lease found.
type LeaseResult struct {
	State     LeaseState
	Value     string        // Changed
	Fence     string        // Acquired
	Remaining time.Duration // Held
}

// LeaseArgs are the arguments of Lease.
type LeaseArgs struct {
	Token    string
	LeaseTTL time.Duration
	GenTTL   time.Duration
	// Seen is the generation of the envelope the caller read, nil when it read none.
	Seen []byte
	// NoLock asks only for the fence, without taking the lease (the Singleflight strategy).
	NoLock bool
}

// Lease re-reads the value and, if it did not change, takes the lease (or only the fence).
func Lease(ctx context.Context, c Scripter, k Keys, a LeaseArgs) (LeaseResult, error) {
	lock := "1"
	if a.NoLock {
		lock = "0"
	}
	res, err := run(ctx, c, leaseScript, []string{k.Value, k.Lock, k.Gen, k.Wait},
		a.Token, ms(a.LeaseTTL), a.Seen, lock, ms(a.GenTTL)).Slice()
	if err != nil {
		return LeaseResult{}, err
	}
	if len(res) != 2 {
		return LeaseResult{}, fmt.Errorf("scripts: lease returned %v", res)
	}
	state, _ := res[0].(int64)
	switch LeaseState(state) {
	case Changed:
		v, ok := res[1].(string)
		if ok {
			return LeaseResult{State: Changed, Value: v}, nil
		}
	case Acquired:
		f, ok := res[1].(string)
		if ok {
			return LeaseResult{State: Acquired, Fence: f}, nil
		}
	case Held:
		left, ok := res[1].(int64)
		if ok {
			return LeaseResult{State: Held, Remaining: time.Duration(max(left, 0)) * time.Millisecond}, nil
		}
	}
	return LeaseResult{}, fmt.Errorf("scripts: lease returned %v", res)
}

// FillArgs are the arguments of Fill.
type FillArgs struct {
	Token    string // empty when the caller holds no lease
	Fence    string
	Envelope []byte // its generation bytes are overwritten
	TTL      time.Duration
	GenTTL   time.Duration
	Channel  string
	Key      string
	Ack      Ack // for a Refresh's fill; c must then be a Writer
}

// Fill writes an envelope under a fence, releases the lease and publishes the outcome. It
// returns what it wrote, or ok false when a newer write fenced the load out.
func Fill(ctx context.Context, c Scripter, k Keys, a FillArgs) (w Written, ok bool, err error) {
	g, err := runAcked(ctx, writer(c), a.Ack, fillScript, []string{k.Value, k.Lock, k.Gen, k.Wait},
		a.Token, a.Fence, a.Envelope, ms(a.TTL), ms(a.GenTTL), a.Channel, a.Key, MaxMessageValue).Int64()
	if errors.Is(err, redis.Nil) {
		return Written{}, false, nil
	}
	if err != nil {
		return Written{}, false, err
	}
	return written(g), true, nil
}

// Release deletes the lease if token still holds it, then publishes msg.
func Release(ctx context.Context, c Scripter, k Keys, token, channel string, msg []byte) error {
	return run(ctx, c, releaseScript, []string{k.Lock}, token, channel, msg).Err()
}

// Extend extends the lease to ttl if token still holds it, and reports whether it does.
func Extend(ctx context.Context, c Scripter, k Keys, token string, ttl time.Duration) (bool, error) {
	n, err := run(ctx, c, extendScript, []string{k.Lock}, token, ms(ttl)).Int64()
	return n == 1, err
}

// Written is what a write did: the generation it wrote under, and whether it opened its
// eviction buffer's window (see Route): its caller then flushes the buffer when the window ends.
type Written struct {
	Gen    uint64
	Opened bool
}

// written decodes a write script's reply: the generation, negated when it opened a window.
func written(g int64) Written {
	if g < 0 {
		return Written{Gen: uint64(-g), Opened: true}
	}
	return Written{Gen: uint64(g)}
}

// Set writes an envelope unconditionally under a new generation. channel is a Route.
func Set(ctx context.Context, c Writer, ack Ack, k Keys, env []byte, ttl, genTTL time.Duration, channel, key string) (Written, error) {
	open := func() (int64, error) {
		return writeOpen(ctx, c, ack, k, genTTL, openWrite{what: "s", env: env, ttl: ttl, channel: channel, key: key})
	}
	g, err := runWrite(ctx, c, ack, open, setScript, []string{k.Value, k.Gen}, env, ms(ttl), ms(genTTL), channel, key)
	return written(g), err
}

// Invalidate marks the value stale under a new generation. channel is a Route.
func Invalidate(ctx context.Context, c Writer, ack Ack, k Keys, genTTL time.Duration, channel, key string) (Written, error) {
	open := func() (int64, error) {
		return writeOpen(ctx, c, ack, k, genTTL, openWrite{what: "i", channel: channel, key: key})
	}
	g, err := runWrite(ctx, c, ack, open, invalidateScript, []string{k.Value, k.Gen}, ms(genTTL), channel, key)
	return written(g), err
}

// Delete removes the value under a new generation. channel is a Route.
func Delete(ctx context.Context, c Writer, ack Ack, k Keys, genTTL time.Duration, channel, key string) (Written, error) {
	open := func() (int64, error) {
		return writeOpen(ctx, c, ack, k, genTTL, openWrite{what: "d", channel: channel, key: key})
	}
	g, err := runWrite(ctx, c, ack, open, deleteScript, []string{k.Value, k.Gen}, ms(genTTL), channel, key)
	return written(g), err
}

// BeginRefresh fences out every load in flight, marks the value stale and takes the lease with
// token. It returns the fence to fill under (Written.Gen). channel is a Route.
func BeginRefresh(ctx context.Context, c Writer, ack Ack, k Keys, token string, leaseTTL, genTTL time.Duration, channel, key string) (Written, error) {
	open := func() (int64, error) {
		return writeOpen(ctx, c, ack, k, genTTL, openWrite{what: "i", channel: channel, key: key, token: token, leaseTTL: leaseTTL})
	}
	g, err := runWrite(ctx, c, ack, open, refreshScript, []string{k.Value, k.Lock, k.Gen},
		token, ms(leaseTTL), ms(genTTL), channel, key)
	if err != nil {
		return Written{}, err
	}
	return written(g), nil
}

// ms formats a duration as whole milliseconds, at least 1, as PX requires.
func ms(d time.Duration) string {
	return strconv.FormatInt(max(int64((d+time.Millisecond-1)/time.Millisecond), 1), 10)
}

// ParseLease returns the token of a lease as the lock key holds it, and when it expires (zero
// for a lease of an older version, whose expiry is its key's TTL).
func ParseLease(v string) (token string, expires time.Time) {
	token, rest, ok := strings.Cut(v, "|")
	if !ok {
		return v, time.Time{}
	}
	exp, _, _ := strings.Cut(rest, "|")
	ms, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return token, time.Time{}
	}
	return token, time.UnixMilli(ms)
}

// writer returns c as a Writer; a plain Scripter (which cannot be asked to wait) runs unacked.
func writer(c Scripter) Writer {
	if w, ok := c.(Writer); ok {
		return w
	}
	return noPipeline{c}
}

type noPipeline struct{ Scripter }

func (noPipeline) Pipelined(context.Context, func(redis.Pipeliner) error) ([]redis.Cmder, error) {
	return nil, errors.New("scripts: no pipeline to wait for replicas on")
}
