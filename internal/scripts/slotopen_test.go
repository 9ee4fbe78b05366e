package scripts

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/envelope"
)

// openSlot is a go-redis hook that answers every script on more than one key with TRYAGAIN, as
// Redis Cluster does while the keys' slot is open and a node lacks some of them; single-key
// scripts go through. before, when set, runs before each single-key script, with its keys.
type openSlot struct {
	refused, single atomic.Int64
	before          func(cmd redis.Cmder)
}

var errTryAgain = errors.New("TRYAGAIN Multiple keys request during rehashing of slot")

func (h *openSlot) refuse(cmd redis.Cmder) bool {
	name := cmd.Name()
	if name != "evalsha" && name != "eval" {
		return false
	}
	if n, _ := cmd.Args()[2].(int); n <= 1 {
		h.single.Add(1)
		if h.before != nil {
			h.before(cmd)
		}
		return false
	}
	h.refused.Add(1)
	cmd.SetErr(errTryAgain)
	return true
}

func (h *openSlot) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *openSlot) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if h.refuse(cmd) {
			return cmd.Err()
		}
		return next(ctx, cmd)
	}
}

func (h *openSlot) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if h.refuse(cmd) {
				for _, c := range cmds {
					c.SetErr(errTryAgain)
				}
				return errTryAgain
			}
		}
		return next(ctx, cmds)
	}
}

// listen returns the messages published on the namespace's channel, read as they come (a
// publish to miniredis's in-memory connection waits until it is read).
func listen(t *testing.T, c *redis.Client, ns string) func() Message {
	t.Helper()
	ctx := context.Background()
	ps := c.Subscribe(ctx)
	require.NoError(t, ps.Subscribe(ctx, Channel(ns)))
	_, err := ps.Receive(ctx) // the subscription's confirmation
	require.NoError(t, err)
	t.Cleanup(func() { _ = ps.Close() })
	ch := ps.Channel()
	return func() Message {
		t.Helper()
		select {
		case msg := <-ch:
			m, err := ParseMessage(msg.Payload)
			require.NoError(t, err)
			return m
		case <-time.After(5 * time.Second):
			t.Fatal("no message")
			return Message{}
		}
	}
}

// opened returns a second client of c's server whose multi-key scripts are refused (openSlot).
func opened(t *testing.T, c *redis.Client) (*redis.Client, *openSlot) {
	t.Helper()
	opt := *c.Options()
	if opt.Dialer != nil { // miniredis in memory: keep its dialer
		d := opt.Dialer
		opt.Dialer = func(ctx context.Context, network, addr string) (net.Conn, error) { return d(ctx, network, addr) }
	}
	o := redis.NewClient(&opt)
	t.Cleanup(func() { _ = o.Close() })
	h := &openSlot{}
	o.AddHook(h)
	return o, h
}

type openOp struct {
	name  string
	write func(ctx context.Context, c *redis.Client, k Keys, ns string) (uint64, error)
	// check looks at the keys after the write, which returned gen.
	check func(t *testing.T, c *redis.Client, k Keys, gen uint64)
	kind  Kind // of the message the write publishes
}

func openOps(t *testing.T) []openOp {
	stored := func(t *testing.T, c *redis.Client, k Keys) (envelope.Header, string) {
		t.Helper()
		raw, err := c.Get(context.Background(), k.Value).Result()
		require.NoError(t, err)
		h, payload, err := envelope.ParseString(raw)
		require.NoError(t, err)
		return h, payload
	}
	return []openOp{
		{
			name: "set",
			write: func(ctx context.Context, c *redis.Client, k Keys, ns string) (uint64, error) {
				return genOf(Set(ctx, c, Ack{}, k, env(t, `"new"`), time.Minute, genTTL, Channel(ns), "k"))
			},
			check: func(t *testing.T, c *redis.Client, k Keys, gen uint64) {
				h, payload := stored(t, c, k)
				require.Equal(t, `"new"`, payload)
				require.Equal(t, gen, h.Gen)
				require.False(t, h.Invalidated())
				require.InDelta(t, time.Minute, c.PTTL(context.Background(), k.Value).Val(), float64(time.Second))
			},
			kind: Filled,
		},
		{
			name: "invalidate",
			write: func(ctx context.Context, c *redis.Client, k Keys, ns string) (uint64, error) {
				return genOf(Invalidate(ctx, c, Ack{}, k, genTTL, Channel(ns), "k"))
			},
			check: func(t *testing.T, c *redis.Client, k Keys, gen uint64) {
				if c.Exists(context.Background(), k.Value).Val() == 0 {
					return
				}
				h, payload := stored(t, c, k)
				require.Equal(t, `"old"`, payload)
				require.Equal(t, gen, h.Gen)
				require.True(t, h.Invalidated())
			},
			kind: Evicted,
		},
		{
			name: "delete",
			write: func(ctx context.Context, c *redis.Client, k Keys, ns string) (uint64, error) {
				return genOf(Delete(ctx, c, Ack{}, k, genTTL, Channel(ns), "k"))
			},
			check: func(t *testing.T, c *redis.Client, k Keys, gen uint64) {
				require.Zero(t, c.Exists(context.Background(), k.Value).Val())
			},
			kind: Evicted,
		},
		{
			name: "refresh",
			write: func(ctx context.Context, c *redis.Client, k Keys, ns string) (uint64, error) {
				fence, err := fenceOf(BeginRefresh(ctx, c, Ack{}, k, "refresher", leaseTTL, genTTL, Channel(ns), "k"))
				if err != nil {
					return 0, err
				}
				return strconv.ParseUint(fence, 10, 64)
			},
			check: func(t *testing.T, c *redis.Client, k Keys, gen uint64) {
				require.Equal(t, "refresher", leaseToken(c, k))
				require.InDelta(t, leaseTTL, c.PTTL(context.Background(), k.Lock).Val(), float64(time.Hour), "the lease key's TTL only collects garbage")
				if c.Exists(context.Background(), k.Value).Val() == 1 {
					h, payload := stored(t, c, k)
					require.Equal(t, `"old"`, payload)
					require.Equal(t, gen, h.Gen)
					require.True(t, h.Invalidated())
				}
			},
			kind: Evicted,
		},
	}
}

// TestOpenSlotWritesFallBackToSingleKeys: each write whose script Redis refuses with TRYAGAIN
// (as for a slot left open) is made with single-key scripts, to the same effect as its script:
// the value, the fence, the lease, the message; and a load that read the fence before the write
// cannot fill after it, whether the value, the fence and the lease existed or not.
func TestOpenSlotWritesFallBackToSingleKeys(t *testing.T) {
	for _, op := range openOps(t) {
		for _, state := range []string{"value", "no value", "nothing"} {
			t.Run(op.name+"/"+state, func(t *testing.T) {
				backends(t, func(t *testing.T, c *redis.Client, ns string) {
					ctx := context.Background()
					k := KeysFor(ns, "k")
					var fence string
					var seen []byte
					switch state {
					case "value":
						_, err := genOf(Set(ctx, c, Ack{}, k, env(t, `"old"`), time.Minute, genTTL, Channel(ns), "k"))
						require.NoError(t, err)
						raw, err := c.Get(ctx, k.Value).Bytes()
						require.NoError(t, err)
						seen = raw[envelope.GenOffset : envelope.GenOffset+8]
						fallthrough
					case "no value":
						lease, err := Lease(ctx, c, k, LeaseArgs{Token: "loader", LeaseTTL: leaseTTL, GenTTL: genTTL, Seen: seen, NoLock: state == "value"})
						require.NoError(t, err)
						require.Equal(t, Acquired, lease.State)
						fence = lease.Fence
					}
					next := listen(t, c, ns)
					o, h := opened(t, c)

					gen, err := op.write(ctx, o, k, ns)
					require.NoError(t, err)
					require.Positive(t, h.refused.Load(), "the write's script was refused")
					require.Positive(t, h.single.Load(), "single-key scripts made it")
					require.Equal(t, strconv.FormatUint(gen, 10), c.Get(ctx, k.Gen).Val(), "the fence is the write's generation")
					if fence != "" {
						f, _ := strconv.ParseUint(fence, 10, 64)
						require.Greater(t, gen, f)
					} else {
						require.Greater(t, gen, uint64(1_000_000_000_000_000), "a new fence starts at the server's clock")
					}
					op.check(t, c, k, gen)
					require.Equal(t, Message{Kind: op.kind, Gen: gen, Key: "k"}, next())

					if fence != "" {
						token := "loader"
						if state == "value" {
							token = "" // a fence without a lease (NoLock)
						}
						before, _ := c.Get(ctx, k.Value).Result()
						_, ok, err := fillOf(Fill(ctx, c, k, FillArgs{Token: token, Fence: fence, Envelope: env(t, `"stale load"`),
							TTL: time.Minute, GenTTL: genTTL, Channel: Channel(ns), Key: "k"}))
						require.NoError(t, err)
						require.False(t, ok, "a load that began before the write must not write after it")
						after, _ := c.Get(ctx, k.Value).Result()
						require.Equal(t, before, after)
					}
					if op.name == "refresh" {
						// The Refresh fills under the fence it got, holding the lease.
						_, ok, err := fillOf(Fill(ctx, c, k, FillArgs{Token: "refresher", Fence: strconv.FormatUint(gen, 10), Envelope: env(t, `"refreshed"`),
							TTL: time.Minute, GenTTL: genTTL, Channel: Channel(ns), Key: "k"}))
						require.NoError(t, err)
						require.True(t, ok)
					}
				})
			})
		}
	}
}

// TestOpenSlotWriteAfterANewerOne: a write made with single-key scripts that reaches the value
// after a write that advanced the fence later (here a Set whose script ran between the two
// steps) advances the fence again, so that its generation, and its message's, is the newest.
func TestOpenSlotWriteAfterANewerOne(t *testing.T) {
	for _, op := range openOps(t) {
		t.Run(op.name, func(t *testing.T) {
			backends(t, func(t *testing.T, c *redis.Client, ns string) {
				ctx := context.Background()
				k := KeysFor(ns, "k")
				_, err := genOf(Set(ctx, c, Ack{}, k, env(t, `"old"`), time.Minute, genTTL, Channel(ns), "k"))
				require.NoError(t, err)
				o, h := opened(t, c)
				var other uint64
				h.before = func(cmd redis.Cmder) {
					if other == 0 && cmd.Args()[3] == k.Value {
						// Another instance's Set, whose script ran, gets in between.
						g, err := genOf(Set(ctx, c, Ack{}, k, env(t, `"old"`), time.Minute, genTTL, Channel(ns), "k"))
						require.NoError(t, err)
						other = g
					}
				}
				next := listen(t, c, ns)

				gen, err := op.write(ctx, o, k, ns)
				require.NoError(t, err)
				require.NotZero(t, other)
				require.Greater(t, gen, other)
				require.Equal(t, strconv.FormatUint(gen, 10), c.Get(ctx, k.Gen).Val())
				op.check(t, c, k, gen)
				require.Equal(t, Message{Kind: Filled, Gen: other, Key: "k"}, next())
				require.Equal(t, Message{Kind: op.kind, Gen: gen, Key: "k"}, next())
			})
		})
	}
}

// TestOpenSlotWriteOverAValueAheadOfItsFence: a value whose generation is ahead of the fence
// (its fence was lost, or it is foreign) does not stop a write made with single-key scripts.
func TestOpenSlotWriteOverAValueAheadOfItsFence(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		ctx := context.Background()
		k := KeysFor(ns, "k")
		ahead := env(t, `"ahead"`)
		for i := range 8 {
			ahead[envelope.GenOffset+i] = 0x0f // about 10^18, ahead of any fence from the clock
		}
		require.NoError(t, c.Set(ctx, k.Value, ahead, time.Minute).Err())
		o, _ := opened(t, c)
		gen, err := genOf(Set(ctx, o, Ack{}, k, env(t, `"new"`), time.Minute, genTTL, Channel(ns), "k"))
		require.NoError(t, err)
		raw, err := c.Get(ctx, k.Value).Result()
		require.NoError(t, err)
		h, payload, err := envelope.ParseString(raw)
		require.NoError(t, err)
		require.Equal(t, `"new"`, payload)
		require.Equal(t, gen, h.Gen)
	})
}

// TestOpenSlotAckedWrite: each single-key step of a write is acknowledged, as the write's script
// is: without a replica, every step is taken and the write reports ErrUnconfirmed.
func TestOpenSlotAckedWrite(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		if c.Options().Dialer != nil {
			t.Skip("miniredis has no WAIT")
		}
		ctx := context.Background()
		k := KeysFor(ns, "k")
		o, h := opened(t, c)
		gen, err := genOf(Set(ctx, o, Ack{Replicas: 1, Timeout: 5 * time.Millisecond}, k, env(t, `"v"`), time.Minute, genTTL, Channel(ns), "k"))
		require.ErrorIs(t, err, ErrUnconfirmed)
		require.Positive(t, h.refused.Load())
		raw, err := c.Get(ctx, k.Value).Result()
		require.NoError(t, err)
		got, payload, err := envelope.ParseString(raw)
		require.NoError(t, err)
		require.Equal(t, `"v"`, payload)
		require.Equal(t, strconv.FormatUint(got.Gen, 10), c.Get(ctx, k.Gen).Val())
		require.Equal(t, gen, got.Gen, "the generation is returned with the error")
	})
}
