package scripts

import (
	"context"
	"encoding/binary"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// backends runs f against miniredis and, when STAMPEDE_REDIS_ADDR is set, the real Redis, whose
// Lua differs from miniredis's in ways that matter here (number formatting, string.format).
func backends(t *testing.T, f func(t *testing.T, c *redis.Client, ns string)) {
	t.Run("miniredis", func(t *testing.T) {
		f(t, redistest.Client(t, redistest.Mini(t)), redistest.Namespace(t))
	})
	t.Run("redis", func(t *testing.T) {
		f(t, redistest.Real(t), redistest.Namespace(t))
	})
}

const (
	leaseTTL = 3 * time.Second
	genTTL   = time.Minute
)

func env(t *testing.T, payload string) []byte {
	t.Helper()
	now := time.Now().UnixNano()
	return append(envelope.Append(nil, envelope.Header{WrittenAt: now, FreshUntil: now + int64(time.Minute)}), payload...)
}

// subscribe returns the messages published on the namespace's channel.
func subscribe(t *testing.T, c *redis.Client, ns string) func() Message {
	t.Helper()
	ctx := context.Background()
	ps := c.Subscribe(ctx)
	require.NoError(t, ps.Subscribe(ctx, Channel(ns)))
	_, err := ps.Receive(ctx) // the subscription's confirmation
	require.NoError(t, err)
	t.Cleanup(func() { _ = ps.Close() })
	return func() Message {
		t.Helper()
		msg, err := ps.ReceiveMessage(ctx)
		require.NoError(t, err)
		m, err := ParseMessage(msg.Payload)
		require.NoError(t, err)
		return m
	}
}

func TestLeaseAndFill(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		ctx := context.Background()
		k := KeysFor(ns, "user:celeb")
		next := subscribe(t, c, ns)

		first, err := Lease(ctx, c, k, LeaseArgs{Token: "a", LeaseTTL: leaseTTL, GenTTL: genTTL})
		require.NoError(t, err)
		require.Equal(t, Acquired, first.State)
		fence, err := strconv.ParseUint(first.Fence, 10, 64)
		require.NoError(t, err)
		require.Greater(t, fence, uint64(1_000_000_000_000_000), "a new fence starts at the server's clock in microseconds")

		second, err := Lease(ctx, c, k, LeaseArgs{Token: "b", LeaseTTL: leaseTTL, GenTTL: genTTL})
		require.NoError(t, err)
		require.Equal(t, Held, second.State)
		require.InDelta(t, leaseTTL, second.Remaining, float64(time.Second))

		gen, ok, err := fillOf(Fill(ctx, c, k, FillArgs{Token: "a", Fence: first.Fence, Envelope: env(t, `"v1"`),
			TTL: time.Minute, GenTTL: genTTL, Channel: Channel(ns), Key: "user:celeb"}))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, fence+1, gen)
		msg := next()

		stored, err := c.Get(ctx, k.Value).Result()
		require.NoError(t, err)
		require.Equal(t, Message{Kind: Filled, Gen: gen, Key: "user:celeb", Value: stored}, msg,
			"somebody waited: the message carries the value")
		h, payload, err := envelope.ParseString(stored)
		require.NoError(t, err)
		require.Equal(t, gen, h.Gen, "the fill stamps the generation it wrote")
		require.Equal(t, `"v1"`, payload)
		require.Zero(t, c.Exists(ctx, k.Lock).Val(), "the fill releases the lease")

		// A caller that saw nothing now finds the value; one that saw it takes the lease.
		changed, err := Lease(ctx, c, k, LeaseArgs{Token: "c", LeaseTTL: leaseTTL, GenTTL: genTTL})
		require.NoError(t, err)
		require.Equal(t, LeaseResult{State: Changed, Value: stored}, changed)
		again, err := Lease(ctx, c, k, LeaseArgs{Token: "c", LeaseTTL: leaseTTL, GenTTL: genTTL, Seen: []byte(stored[2:10])})
		require.NoError(t, err)
		require.Equal(t, LeaseResult{State: Acquired, Fence: strconv.FormatUint(gen, 10)}, again)
	})
}

func TestFillIsFencedByEveryWrite(t *testing.T) {
	writes := map[string]func(ctx context.Context, c *redis.Client, k Keys, ns string) error{
		"delete": func(ctx context.Context, c *redis.Client, k Keys, ns string) error {
			_, err := genOf(Delete(ctx, c, Ack{}, k, genTTL, Channel(ns), "k"))
			return err
		},
		"invalidate": func(ctx context.Context, c *redis.Client, k Keys, ns string) error {
			_, err := genOf(Invalidate(ctx, c, Ack{}, k, genTTL, Channel(ns), "k"))
			return err
		},
		"set": func(ctx context.Context, c *redis.Client, k Keys, ns string) error {
			_, err := genOf(Set(ctx, c, Ack{}, k, env(t, `"new"`), time.Minute, genTTL, Channel(ns), "k"))
			return err
		},
		"refresh": func(ctx context.Context, c *redis.Client, k Keys, ns string) error {
			_, err := fenceOf(BeginRefresh(ctx, c, Ack{}, k, "refresher", leaseTTL, genTTL, Channel(ns), "k"))
			return err
		},
		"another fill": func(ctx context.Context, c *redis.Client, k Keys, ns string) error {
			// The first holder's lease expired and a second one loaded and filled first.
			fence, err := c.Get(ctx, k.Gen).Result()
			if err != nil {
				return err
			}
			_, _, err = fillOf(Fill(ctx, c, k, FillArgs{Fence: fence, Envelope: env(t, `"second"`),
				TTL: time.Minute, GenTTL: genTTL, Channel: Channel(ns), Key: "k"}))
			return err
		},
	}
	for name, write := range writes {
		t.Run(name, func(t *testing.T) {
			backends(t, func(t *testing.T, c *redis.Client, ns string) {
				ctx := context.Background()
				k := KeysFor(ns, "k")
				lease, err := Lease(ctx, c, k, LeaseArgs{Token: "old", LeaseTTL: leaseTTL, GenTTL: genTTL})
				require.NoError(t, err)
				require.Equal(t, Acquired, lease.State)

				require.NoError(t, write(ctx, c, k, ns))
				before, _ := c.Get(ctx, k.Value).Result()

				_, ok, err := fillOf(Fill(ctx, c, k, FillArgs{Token: "old", Fence: lease.Fence, Envelope: env(t, `"old"`),
					TTL: time.Minute, GenTTL: genTTL, Channel: Channel(ns), Key: "k"}))
				require.NoError(t, err)
				require.False(t, ok, "a load that began before the write must not write after it")
				after, _ := c.Get(ctx, k.Value).Result()
				require.Equal(t, before, after)
			})
		})
	}
}

func TestFencedFillReleasesAndTellsWaiters(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		ctx := context.Background()
		k := KeysFor(ns, "k")
		lease, err := Lease(ctx, c, k, LeaseArgs{Token: "old", LeaseTTL: leaseTTL, GenTTL: genTTL})
		require.NoError(t, err)
		next := subscribe(t, c, ns)
		gen, err := genOf(Delete(ctx, c, Ack{}, k, genTTL, Channel(ns), "k"))
		require.NoError(t, err)
		require.Equal(t, Message{Kind: Evicted, Gen: gen, Key: "k"}, next())

		_, ok, err := fillOf(Fill(ctx, c, k, FillArgs{Token: "old", Fence: lease.Fence, Envelope: env(t, `"old"`),
			TTL: time.Minute, GenTTL: genTTL, Channel: Channel(ns), Key: "k"}))
		require.NoError(t, err)
		require.False(t, ok)
		require.Equal(t, Message{Kind: Released, Key: "k"}, next())
		require.Zero(t, c.Exists(ctx, k.Lock).Val())
	})
}

func TestInvalidateKeepsValueAndTTL(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		ctx := context.Background()
		k := KeysFor(ns, "k")
		first, err := genOf(Set(ctx, c, Ack{}, k, env(t, `"v"`), time.Minute, genTTL, Channel(ns), "k"))
		require.NoError(t, err)
		gen, err := genOf(Invalidate(ctx, c, Ack{}, k, genTTL, Channel(ns), "k"))
		require.NoError(t, err)
		require.Equal(t, first+1, gen)

		stored, err := c.Get(ctx, k.Value).Result()
		require.NoError(t, err)
		h, payload, err := envelope.ParseString(stored)
		require.NoError(t, err)
		require.True(t, h.Invalidated())
		require.Equal(t, gen, h.Gen)
		require.Equal(t, `"v"`, payload)
		require.InDelta(t, time.Minute, c.PTTL(ctx, k.Value).Val(), float64(time.Second), "KEEPTTL")

		// Invalidating twice keeps the flag and advances the generation.
		gen2, err := genOf(Invalidate(ctx, c, Ack{}, k, genTTL, Channel(ns), "k"))
		require.NoError(t, err)
		stored, _ = c.Get(ctx, k.Value).Result()
		h, _, err = envelope.ParseString(stored)
		require.NoError(t, err)
		require.True(t, h.Invalidated())
		require.Equal(t, gen2, h.Gen)

		// A value that is not an envelope is left alone.
		require.NoError(t, c.Set(ctx, k.Value, "foreign", 0).Err())
		_, err = genOf(Invalidate(ctx, c, Ack{}, k, genTTL, Channel(ns), "k"))
		require.NoError(t, err)
		require.Equal(t, "foreign", c.Get(ctx, k.Value).Val())
	})
}

func TestRefreshTakesTheLease(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		ctx := context.Background()
		k := KeysFor(ns, "k")
		_, err := Lease(ctx, c, k, LeaseArgs{Token: "holder", LeaseTTL: leaseTTL, GenTTL: genTTL})
		require.NoError(t, err)
		fence, err := fenceOf(BeginRefresh(ctx, c, Ack{}, k, "refresher", leaseTTL, genTTL, Channel(ns), "k"))
		require.NoError(t, err)
		require.Equal(t, "refresher", leaseToken(c, k))

		held, err := Extend(ctx, c, k, "holder", leaseTTL)
		require.NoError(t, err)
		require.False(t, held, "the old holder lost its lease")
		held, err = Extend(ctx, c, k, "refresher", 10*time.Second)
		require.NoError(t, err)
		require.True(t, held)
		require.Greater(t, c.PTTL(ctx, k.Lock).Val(), 9*time.Second)

		gen, ok, err := fillOf(Fill(ctx, c, k, FillArgs{Token: "refresher", Fence: fence, Envelope: env(t, `"fresh"`),
			TTL: time.Minute, GenTTL: genTTL, Channel: Channel(ns), Key: "k"}))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, strconv.FormatUint(gen, 10), c.Get(ctx, k.Gen).Val())
	})
}

func TestReleaseOnlyByHolder(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		ctx := context.Background()
		k := KeysFor(ns, "k")
		_, err := Lease(ctx, c, k, LeaseArgs{Token: "a", LeaseTTL: leaseTTL, GenTTL: genTTL})
		require.NoError(t, err)
		msg := Message{Kind: Failed, Key: "k", Err: "boom"}.Append(nil)
		require.NoError(t, Release(ctx, c, k, "b", Channel(ns), msg))
		require.Equal(t, "a", leaseToken(c, k))

		next := subscribe(t, c, ns)
		require.NoError(t, Release(ctx, c, k, "a", Channel(ns), msg))
		require.Zero(t, c.Exists(ctx, k.Lock).Val())
		require.Equal(t, Message{Kind: Failed, Key: "k", Err: "boom"}, next())
	})
}

func TestNoLockLeaseGivesOnlyTheFence(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		ctx := context.Background()
		k := KeysFor(ns, "k")
		for range 2 {
			r, err := Lease(ctx, c, k, LeaseArgs{LeaseTTL: leaseTTL, GenTTL: genTTL, NoLock: true})
			require.NoError(t, err)
			require.Equal(t, Acquired, r.State)
		}
		require.Zero(t, c.Exists(ctx, k.Lock).Val())
		require.InDelta(t, time.Hour, c.PTTL(ctx, k.Gen).Val(), float64(time.Second), "a load's fence lives an hour")
	})
}

func TestGenerationSurvivesItsKey(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		ctx := context.Background()
		k := KeysFor(ns, "k")
		first, err := genOf(Delete(ctx, c, Ack{}, k, genTTL, Channel(ns), "k"))
		require.NoError(t, err)
		require.NoError(t, c.Del(ctx, k.Gen).Err()) // expired, or Redis restarted empty
		second, err := genOf(Delete(ctx, c, Ack{}, k, genTTL, Channel(ns), "k"))
		require.NoError(t, err)
		require.GreaterOrEqual(t, second, first, "a recreated fence does not go back")
	})
}

func TestKeysShareOneHashTag(t *testing.T) {
	keys := []string{"plain", "with{braces}", "}{", "}", "\x00}", "\x00", "a:b c", "ünïcode", "nul\x00byte", "x}:lock"}
	seen := map[string]string{}
	for _, key := range keys {
		k := KeysFor("ns", key)
		tag := hashTag(k.Value)
		require.NotEqual(t, k.Value, tag, "%q has no hash tag", key)
		require.Equal(t, tag, hashTag(k.Lock), key)
		require.Equal(t, tag, hashTag(k.Gen), key)
		for _, rk := range []string{k.Value, k.Lock, k.Gen} {
			require.NotContains(t, seen, rk, "%q and %q share a Redis key", key, seen[rk])
			seen[rk] = key
		}
	}
}

// hashTag is Redis Cluster's rule: the part between the first '{' and the next '}', if non-empty.
func hashTag(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] == '{' {
			for j := i + 1; j < len(key); j++ {
				if key[j] == '}' {
					if j > i+1 {
						return key[i+1 : j]
					}
					return key
				}
			}
			return key
		}
	}
	return key
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range []Message{
		{Kind: Filled, Gen: 1<<53 - 1, Key: "user:celeb"},
		{Kind: Evicted, Gen: 7, Key: ""},
		{Kind: Released, Key: "k\x00}"},
		{Kind: Failed, Key: "k", NotFound: true, Err: "stampede: not found"},
	} {
		got, err := ParseMessage(string(m.Append(nil)))
		require.NoError(t, err)
		require.Equal(t, m, got)
	}
}

func FuzzParseMessage(f *testing.F) {
	f.Add(string(Message{Kind: Filled, Gen: 3, Key: "k"}.Append(nil)))
	f.Add(string(Message{Kind: Failed, Key: "k", Err: "e"}.Append(nil)))
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMessage(s)
		if err != nil {
			return
		}
		if again := string(m.Append(nil)); again != s {
			t.Fatalf("%q parses as %+v, which encodes as %q", s, m, again)
		}
	})
}

// TestLuaEncodesBigEndian checks the Lua encoder against Go's at the limits of Lua's numbers.
func TestLuaEncodesBigEndian(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		ctx := context.Background()
		k := KeysFor(ns, "k")
		// From 1: a fence is never 0 (it starts from the clock), and bump takes the 1 that INCR
		// makes of a missing fence for one to recreate.
		for _, start := range []uint64{1, 255, 1<<32 - 1, 1<<53 - 2} {
			require.NoError(t, c.Set(ctx, k.Gen, start, 0).Err())
			gen, err := genOf(Set(ctx, c, Ack{}, k, env(t, ""), time.Minute, genTTL, Channel(ns), "k"))
			require.NoError(t, err)
			require.Equal(t, start+1, gen)
			stored := []byte(c.Get(ctx, k.Value).Val())
			require.Equal(t, start+1, binary.BigEndian.Uint64(stored[envelope.GenOffset:]))
		}
	})
}

// TestFillPublishesOnlyWhenNeeded: the first fill of a key nobody waits for publishes nothing;
// a fill that waiters wait for, or that replaces a value some L1 may hold, publishes Filled.
func TestFillPublishesOnlyWhenNeeded(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		ctx := context.Background()
		next := subscribe(t, c, ns)
		fill := func(key string, waiter bool) {
			k := KeysFor(ns, key)
			var seen []byte // as a reader passes the generation of the value it found
			if old, err := c.Get(ctx, k.Value).Bytes(); err == nil {
				seen = old[2:10]
			}
			lease, err := Lease(ctx, c, k, LeaseArgs{Token: "a", LeaseTTL: leaseTTL, GenTTL: genTTL, Seen: seen})
			require.NoError(t, err)
			require.Equal(t, Acquired, lease.State)
			if waiter {
				held, err := Lease(ctx, c, k, LeaseArgs{Token: "b", LeaseTTL: leaseTTL, GenTTL: genTTL})
				require.NoError(t, err)
				require.Equal(t, Held, held.State)
			}
			_, ok, err := fillOf(Fill(ctx, c, k, FillArgs{Token: "a", Fence: lease.Fence, Envelope: env(t, `"v"`),
				TTL: time.Minute, GenTTL: genTTL, Channel: Channel(ns), Key: key}))
			require.NoError(t, err)
			require.True(t, ok)
		}
		fill("new", false) // nothing to tell anyone
		fill("waited", true)
		require.Equal(t, "waited", next().Key)
		require.Zero(t, c.Exists(ctx, KeysFor(ns, "waited").Wait).Val(), "the fill clears the wait mark")
		fill("new", false) // replaces a value an L1 may hold
		require.Equal(t, "new", next().Key)
	})
}

// TestLeaseIsIdempotent: a client that retries the lease script after a lost reply finds the
// lease its own, not another holder's, so that it loads instead of waiting on itself.
func TestLeaseIsIdempotent(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		k := KeysFor(ns, "k")
		a := LeaseArgs{Token: "me", LeaseTTL: leaseTTL, GenTTL: genTTL, Seen: []byte{}}
		first, err := Lease(context.Background(), c, k, a)
		require.NoError(t, err)
		require.Equal(t, Acquired, first.State)
		again, err := Lease(context.Background(), c, k, a)
		require.NoError(t, err)
		require.Equal(t, Acquired, again.State, "the retry finds the lease its own")
		require.Equal(t, first.Fence, again.Fence)
		other, err := Lease(context.Background(), c, k, LeaseArgs{Token: "other", LeaseTTL: leaseTTL, GenTTL: genTTL, Seen: []byte{}})
		require.NoError(t, err)
		require.Equal(t, Held, other.State)
	})
}

// TestLeaseRenewsTheFence: handing out a lease gives the fence a full TTL again, so that it
// cannot expire while the load runs and turn a good fill into a refused one.
func TestLeaseRenewsTheFence(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		k := KeysFor(ns, "k")
		require.NoError(t, c.Set(context.Background(), k.Gen, "1000", 50*time.Millisecond).Err())
		r, err := Lease(context.Background(), c, k, LeaseArgs{Token: "me", LeaseTTL: leaseTTL, GenTTL: genTTL, Seen: []byte{}})
		require.NoError(t, err)
		require.Equal(t, Acquired, r.State)
		require.Equal(t, "1000", r.Fence)
		ttl, err := c.PTTL(context.Background(), k.Gen).Result()
		require.NoError(t, err)
		require.Greater(t, ttl, genTTL-5*time.Second)
	})
}

// TestCopyReplicaNeverReplacesNewer: a late copy of an old read does not overwrite a replica
// that a write has made newer.
func TestCopyReplicaNeverReplacesNewer(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		rk := ReplicaKeys(ns, "k", 1)[0]
		at := func(gen uint64, payload string) []byte {
			e := env(t, payload)
			binary.BigEndian.PutUint64(e[envelope.GenOffset:], gen)
			return e
		}
		require.NoError(t, CopyReplica(context.Background(), c, rk, at(5, "new"), time.Minute))
		require.NoError(t, CopyReplica(context.Background(), c, rk, at(4, "old"), time.Minute))
		got, err := c.Get(context.Background(), rk).Bytes()
		require.NoError(t, err)
		require.Equal(t, at(5, "new")[envelope.HeaderSize:], got[envelope.HeaderSize:])
		require.NoError(t, CopyReplica(context.Background(), c, rk, at(6, "newer"), time.Minute))
		got, err = c.Get(context.Background(), rk).Bytes()
		require.NoError(t, err)
		require.Equal(t, "newer", string(got[envelope.HeaderSize:]))
	})
}

// leaseToken returns the token of the lease on k, "" if none.
func leaseToken(c *redis.Client, k Keys) string {
	token, _ := ParseLease(c.Get(context.Background(), k.Lock).Val())
	return token
}

// TestAckedWriteWithoutReplicaIsUnconfirmed: a write that asks for a replica's acknowledgement
// on a primary that has none is taken, and reported unconfirmed once the wait times out.
func TestAckedWriteWithoutReplicaIsUnconfirmed(t *testing.T) {
	c := redistest.Real(t)
	ns := redistest.Namespace(t)
	ctx := context.Background()
	k := KeysFor(ns, "k")
	start := time.Now()
	_, err := genOf(Set(ctx, c, Ack{Replicas: 1, Timeout: 20 * time.Millisecond}, k, env(t, `"v"`), time.Minute, genTTL, Channel(ns), "k"))
	require.ErrorIs(t, err, ErrUnconfirmed)
	require.Less(t, time.Since(start), time.Second)
	require.EqualValues(t, 1, c.Exists(ctx, k.Value).Val(), "the primary took it")
	_, err = genOf(Set(ctx, c, Ack{}, k, env(t, `"v"`), time.Minute, genTTL, Channel(ns), "k"))
	require.NoError(t, err, "without an Ack, nothing waits")
}
