package stampede_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/redistest"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// Bad input: every call gets a clear stampede: error or treats what it cannot read as a miss;
// nothing panics, and nothing but the key at hand is written.

func constLoader(v string) stampede.Loader[string] {
	return func(context.Context, string) (string, error) { return v, nil }
}

func requireStampedeErr(t *testing.T, err error, target error, msgAndArgs ...any) {
	t.Helper()
	require.ErrorIs(t, err, target, msgAndArgs...)
	require.True(t, strings.HasPrefix(err.Error(), "stampede:"), "%q is not a stampede: error", err)
}

// TestBadKeys: empty and oversized keys are refused by every call; any other bytes are a key,
// stored at its own Redis key, and no key's writes touch another's.
func TestBadKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		caches := fleet[string](t, m, 2)
		a, b := caches[0], caches[1]
		for _, key := range []string{"", strings.Repeat("k", stampede.MaxKeyLen+1)} {
			_, err := a.Get(ctx, key, constLoader("v"))
			requireStampedeErr(t, err, stampede.ErrInvalidKey)
			requireStampedeErr(t, a.Set(ctx, key, "v"), stampede.ErrInvalidKey)
			requireStampedeErr(t, a.Invalidate(ctx, key), stampede.ErrInvalidKey)
			requireStampedeErr(t, a.Delete(ctx, key), stampede.ErrInvalidKey)
			_, err = a.Refresh(ctx, key, constLoader("v"))
			requireStampedeErr(t, err, stampede.ErrInvalidKey)
		}
		require.Empty(t, m.Keys(), "nothing was written")

		longest := strings.Repeat("k", stampede.MaxKeyLen)
		keys := append([]string{longest}, oddKeys...)
		for i, key := range keys {
			require.NoError(t, a.Set(ctx, key, strconv.Itoa(i)), "%q", key)
			require.True(t, m.Exists(scripts.ValueKey("stampede", key)), "%q", key)
		}
		synctest.Wait()
		for i, key := range keys {
			v, err := b.Get(ctx, key, constLoader("unused"), stampede.WithoutL1())
			require.NoError(t, err, "%q", key)
			require.Equal(t, strconv.Itoa(i), v, "%q", key)
		}
		// Removing each key leaves every other one in Redis.
		for i, key := range keys {
			require.NoError(t, a.Delete(ctx, key))
			synctest.Wait()
			for j, other := range keys[i+1:] {
				v, err := b.Get(ctx, other, constLoader("reloaded"), stampede.WithoutL1())
				require.NoError(t, err)
				require.Equal(t, strconv.Itoa(i+1+j), v, "deleting %q changed %q", key, other)
			}
		}
	})
}

// TestBadNamespaces: New refuses namespaces that would move keys between cluster slots or be
// empty; colons are fine, and caches in namespaces that look alike never share a key.
func TestBadNamespaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		client := redistest.Client(t, m)
		for _, ns := range []string{"", "{", "}", "a{b", "a}b", "{a}", strings.Repeat("n", 257)} {
			_, err := stampede.New[string](client, stampede.WithNamespace(ns))
			require.Error(t, err, "%q", ns)
			require.True(t, strings.HasPrefix(err.Error(), "stampede:"), "%q: %v", ns, err)
		}
		// Pairs that a careless layout would map to one key.
		pairs := [][2]string{
			{"a", "b:c"}, {"a:b", "c"}, {"a", ":b"}, {"a:", "b"}, {"a", "}"}, {"a", "\x00}"},
			{"a", "x}:lock"}, {"a", "x"}, {"a", "x}:gen"}, {":", ":"}, {"::", "x"}, {":", ":x"},
		}
		caches := map[string]*stampede.Cache[string]{}
		for _, p := range pairs {
			if caches[p[0]] == nil {
				caches[p[0]] = one[string](t, m, stampede.WithNamespace(p[0]))
			}
			require.NoError(t, caches[p[0]].Set(ctx, p[1], p[0]+"|"+p[1]))
		}
		afterWindow() // the eviction buffers are flushed, and gone
		for _, p := range pairs {
			v, err := caches[p[0]].Get(ctx, p[1], constLoader("unused"), stampede.WithoutL1())
			require.NoError(t, err)
			require.Equal(t, p[0]+"|"+p[1], v, "namespace %q, key %q", p[0], p[1])
		}
		require.Len(t, m.Keys(), 2*len(pairs), "a value and a fence per pair")
	})
}

// TestDistinctPairsNeverShareARedisKey checks the key layout over every short (namespace, key)
// pair from an alphabet of separators, braces and NUL, and over random longer ones: no two
// pairs share a Redis key (value, lease or fence), and a pair's three keys share a hash slot.
func TestDistinctPairsNeverShareARedisKey(t *testing.T) {
	owner := map[string][2]string{}
	check := func(ns, key string) {
		k := scripts.KeysFor(ns, key)
		require.Equal(t, k.Value, scripts.ValueKey(ns, key))
		slot := keySlot(k.Value)
		for _, name := range []string{k.Value, k.Lock, k.Gen} {
			if o, ok := owner[name]; ok && o != [2]string{ns, key} {
				t.Fatalf("(%q, %q) and (%q, %q) share the Redis key %q", o[0], o[1], ns, key, name)
			}
			owner[name] = [2]string{ns, key}
			require.Equal(t, slot, keySlot(name), "(%q, %q): %q", ns, key, name)
		}
		require.NotContains(t, []string{k.Value, k.Lock, k.Gen}, scripts.Channel(ns))
	}
	all := func(alphabet string, maxLen int) []string {
		out := []string{}
		level := []string{""}
		for range maxLen {
			var next []string
			for _, s := range level {
				for _, c := range []byte(alphabet) {
					next = append(next, s+string(c))
				}
			}
			out = append(out, next...)
			level = next
		}
		return out
	}
	namespaces := all("a:\x00", 3) // valid namespaces have no braces
	keys := all("a:{}\x00", 4)
	for _, ns := range namespaces {
		for _, key := range keys {
			check(ns, key)
		}
	}
	exhaustive := len(owner) / 3

	rng := rand.New(rand.NewPCG(7, 7))
	random := func(alphabet string, n int) string {
		b := make([]byte, 1+rng.IntN(n))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 100_000 {
		check(random("ab:\x00 \xc3\xa9", 6), random("ab:{}\x00\n\xff:lockgen", 10))
	}
	t.Logf("%d exhaustive and %d random pairs: no Redis key shared", exhaustive, len(owner)/3-exhaustive)
}

// TestValueTooLarge: an oversized value is refused by Set and by Refresh, with ErrValueTooLarge;
// nothing is written over the value already there, and the lease is released.
func TestValueTooLarge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		caches := fleet[string](t, m, 2, stampede.WithMaxValueBytes(64))
		a, b := caches[0], caches[1]
		big := strings.Repeat("x", 64)
		require.NoError(t, a.Set(ctx, "k", "small"))
		before, _ := m.Get("stampede:{k}")

		requireStampedeErr(t, a.Set(ctx, "k", big), stampede.ErrValueTooLarge)
		_, err := a.Refresh(ctx, "k", constLoader(big))
		requireStampedeErr(t, err, stampede.ErrValueTooLarge)
		require.False(t, m.Exists("stampede:{k}:lock"), "Refresh released the lease")
		v, err := b.Get(ctx, "k", constLoader("unused"))
		require.NoError(t, err)
		require.Equal(t, "small", v, "the value is still there (stale after the failed Refresh)")
		after, _ := m.Get("stampede:{k}")
		require.Equal(t, before[envelope.HeaderSize:], after[envelope.HeaderSize:])
	})
}

// TestValueTooLargeBacksOff: a load whose value cannot be stored (over WithMaxValueBytes) fails
// like a load that returns an error: its callers get the error, the lease is released, and the
// failure's back-off keeps the callers that came during the load (they board the next flight)
// from loading again at once. The instance here cannot subscribe, so that it does not hear its
// own failure back from Redis, which would otherwise make up for a missing back-off some of the
// time.
func TestValueTooLargeBacksOff(t *testing.T) {
	big := strings.Repeat("x", 64)
	for name, fail := range map[string]func(s *source){
		"load error":      func(s *source) { s.fail(errDatabase) },
		"value too large": func(s *source) { s.value.Store(big) },
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := redistest.Mini(t)
				c, err := stampede.New[string](redistest.NoSubscribe(redistest.Client(t, m)), stampede.WithMaxValueBytes(64))
				require.NoError(t, err)
				defer c.Close()
				src := newSource("v")
				fail(src)
				started, release := src.hold()
				errs := make(chan error, 6)
				go func() { _, err := c.Get(ctx, "k", src.load); errs <- err }()
				<-started
				for range 5 { // they board the next flight
					go func() { _, err := c.Get(ctx, "k", src.load); errs <- err }()
				}
				synctest.Wait()
				release()
				for range 6 {
					require.Error(t, <-errs)
				}
				require.EqualValues(t, 1, src.calls.Load(), "one load; the callers that came during it are in its back-off")
				require.False(t, m.Exists("stampede:{k}"))
				require.False(t, m.Exists("stampede:{k}:lock"), "the lease is released")
			})
		})
	}
}

// flakyCodec is JSON, except that it refuses to encode strings that begin with "!" and to
// decode payloads that begin with `"?`.
type flakyCodec struct{ stampede.JSONCodec }

func (c flakyCodec) Marshal(v any) ([]byte, error) {
	if s, ok := v.(string); ok && strings.HasPrefix(s, "!") {
		return nil, errors.New("flaky: cannot encode")
	}
	return c.JSONCodec.Marshal(v)
}

func (c flakyCodec) Unmarshal(data []byte, v any) error {
	if strings.HasPrefix(string(data), `"?`) {
		return errors.New("flaky: cannot decode")
	}
	return c.JSONCodec.Unmarshal(data, v)
}

// TestCodecFailures: a value the codec cannot encode is a stampede: error for Set and for the
// callers of its load, and nothing is written; a payload it cannot decode (or one of another
// type, written by a cache of another V in the same namespace) is a miss, loaded and overwritten.
func TestCodecFailures(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithCodec(flakyCodec{}))
		require.NoError(t, c.Set(ctx, "k", "ok"))

		err := c.Set(ctx, "k", "!bad")
		require.ErrorContains(t, err, "stampede: encode: flaky: cannot encode")
		v, err := c.Get(ctx, "k", constLoader("unused"), stampede.WithoutL1())
		require.NoError(t, err)
		require.Equal(t, "ok", v, "the failed Set wrote nothing")

		_, err = c.Get(ctx, "fresh", constLoader("!bad"))
		require.ErrorContains(t, err, "stampede: encode: flaky: cannot encode")
		require.False(t, m.Exists("stampede:{fresh}"))
		require.False(t, m.Exists("stampede:{fresh}:lock"))

		// Written by this codec, unreadable by it: a miss, which the load overwrites.
		require.NoError(t, c.Set(ctx, "unreadable", "?x"))
		v, err = c.Get(ctx, "unreadable", constLoader("reloaded"), stampede.WithoutL1())
		require.NoError(t, err)
		require.Equal(t, "reloaded", v)
		v, err = c.Get(ctx, "unreadable", constLoader("unused"), stampede.WithoutL1())
		require.NoError(t, err)
		require.Equal(t, "reloaded", v, "overwritten")

		// A cache of ints in the namespace of a cache of strings.
		ints := one[int](t, m)
		n, err := ints.Get(ctx, "k", func(context.Context, string) (int, error) { return 42, nil })
		require.NoError(t, err)
		require.Equal(t, 42, n)
	})
}

// TestNilLoaderAndNilOptions are refused with a stampede: error, even for a cached key.
func TestNilLoaderAndNilOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := one[string](t, redistest.Mini(t))
		require.NoError(t, c.Set(ctx, "k", "v"))
		_, err := c.Get(ctx, "k", nil)
		requireStampedeErr(t, err, stampede.ErrNilLoader)
		_, err = c.Refresh(ctx, "k", nil)
		requireStampedeErr(t, err, stampede.ErrNilLoader)
		_, err = c.Get(ctx, "k", constLoader("v"), nil)
		require.ErrorContains(t, err, "stampede: nil GetOption")
	})
}

// TestCancelledContext: a call whose ctx has ended returns ctx's error (wrapped for writes),
// leaves no lease behind, and does not change what the next caller gets.
func TestCancelledContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		caches := fleet[string](t, m, 2)
		a, b := caches[0], caches[1]
		cancelled, cancel := context.WithCancel(ctx)
		cancel()

		_, err := a.Get(cancelled, "miss", constLoader("v"))
		require.Equal(t, context.Canceled, err, "ctx.Err(), unchanged")
		for name, err := range map[string]error{
			"Set":        a.Set(cancelled, "k", "v"),
			"Invalidate": a.Invalidate(cancelled, "k"),
			"Delete":     a.Delete(cancelled, "k"),
		} {
			require.ErrorIs(t, err, context.Canceled, name)
			require.True(t, strings.HasPrefix(err.Error(), "stampede:"), "%s: %v", name, err)
		}
		_, err = a.Refresh(cancelled, "k", constLoader("v"))
		require.ErrorIs(t, err, context.Canceled)
		for _, k := range m.Keys() {
			require.False(t, strings.HasSuffix(k, ":lock"), "lease %s left behind", k)
		}

		// A caller whose ctx ends while it waits for a load stops waiting; the load goes on.
		src := newSource("v")
		started, release := src.hold()
		go func() { _, _ = a.Get(ctx, "slow", src.load) }()
		<-started
		short, stop := context.WithTimeout(ctx, 10*time.Millisecond)
		defer stop()
		_, err = b.Get(short, "slow", src.load)
		require.Equal(t, context.DeadlineExceeded, err)
		release()
		v, err := b.Get(ctx, "slow", src.load)
		require.NoError(t, err)
		require.Equal(t, "v", v)
		require.EqualValues(t, 1, src.calls.Load())
	})
}

// TestCancelledCallerDoesNotStrandTheCircuit: when Redis fails, reads stop trying it for a
// cooldown and then let one read probe it. If the caller of that probe gives up (its ctx ends)
// before Redis answers, a later read must probe again: once Redis is back, reads use it again.
// Only the cache's reads fail here (its subscription stays up, as when Redis is slow rather than
// gone), so that nothing else reports a failure to the circuit.
func TestCancelledCallerDoesNotStrandTheCircuit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		client := redistest.Client(t, m)
		var faults readFaults
		client.AddHook(&faults)
		c, err := stampede.New[string](client)
		require.NoError(t, err)
		defer c.Close()

		faults.failing.Store(true)
		for i := range 10 { // open the circuit
			_, err := c.Get(ctx, fmt.Sprint("k", i), constLoader("v"), stampede.WithoutL1())
			require.NoError(t, err)
		}
		time.Sleep(time.Second) // past the cooldown: the next read probes Redis
		faults.hanging.Store(true)
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err = c.Get(short, "probe", constLoader("v"))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.EqualValues(t, 1, faults.hung.Load(), "the probe went to Redis and hung")

		faults.failing.Store(false)
		faults.hanging.Store(false)
		require.NoError(t, c.Set(ctx, "in-redis", "from Redis"))
		src := newSource("from the loader")
		for range 3 {
			time.Sleep(time.Second) // any cooldown is over
			v, err := c.Get(ctx, "in-redis", src.load, stampede.WithoutL1())
			require.NoError(t, err)
			require.Equal(t, "from Redis", v, "Redis is back: reads use it again (L2 hits %d, Redis errors %d)",
				c.Stats().L2Hits, c.Stats().RedisErrors)
		}
	})
}

// readFaults is a go-redis hook that fails the reads and scripts of a client (GET, EVALSHA,
// EVAL) while failing is set, and makes them hang until their ctx ends while hanging is set.
type readFaults struct {
	failing, hanging atomic.Bool
	hung             atomic.Int64
}

func (f *readFaults) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f *readFaults) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (f *readFaults) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "get", "evalsha", "eval":
			if f.hanging.Load() {
				f.hung.Add(1)
				<-ctx.Done()
				cmd.SetErr(ctx.Err())
				return ctx.Err()
			}
			if f.failing.Load() {
				err := errors.New("ERR the server is on fire")
				cmd.SetErr(err)
				return err
			}
		}
		return next(ctx, cmd)
	}
}

// TestCloseDuringGets closes an instance while its callers read and load: each gets the value
// or ErrClosed, nothing panics, the other instance goes on (the closed one's leases are
// released, so nobody waits for them), and no goroutine is left (synctest checks).
func TestCloseDuringGets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		caches := fleet[string](t, m, 2)
		victim, other := caches[0], caches[1]
		src := newSource("v")
		src.latency = 30 * time.Millisecond
		const callers = 300
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				time.Sleep(time.Duration(i%30) * time.Millisecond)
				var v string
				v, errs[i] = victim.Get(ctx, fmt.Sprint("k", i%10), src.load)
				if errs[i] == nil && v != "v" {
					errs[i] = fmt.Errorf("got %q", v)
				}
			})
		}
		time.Sleep(15 * time.Millisecond)
		require.NoError(t, victim.Close())
		wg.Wait()
		closed := 0
		for _, err := range errs {
			if err != nil {
				require.ErrorIs(t, err, stampede.ErrClosed)
				closed++
			}
		}
		t.Logf("%d of %d callers got ErrClosed, the others the value", closed, callers)
		require.NotZero(t, closed)
		for _, k := range m.Keys() {
			require.False(t, strings.HasSuffix(k, ":lock"), "Close releases the leases of the loads it cancels: %s is left", k)
		}
		start := time.Now()
		for i := range 10 {
			v, err := other.Get(ctx, fmt.Sprint("k", i), src.load)
			require.NoError(t, err)
			require.Equal(t, "v", v)
		}
		require.Less(t, time.Since(start), time.Second, "nobody waits for a lease of the closed instance")
		_, err := victim.Get(ctx, "k0", src.load)
		require.ErrorIs(t, err, stampede.ErrClosed)
	})
}

// TestForeignRedisValues: what another program leaves at a cache's keys. Values that are not
// envelopes, or are cut short, or carry an unknown version, are misses that the next load
// overwrites; a value of another Redis type cannot be read or overwritten by a load, so reads
// go to the loader, without an error; keys of other programs are never touched.
func TestForeignRedisValues(t *testing.T) {
	valid := envelope.Append(nil, envelope.Header{WrittenAt: 1, FreshUntil: 1 << 62})
	for name, stored := range map[string]string{
		"empty":           "",
		"text":            "written by another program",
		"json":            `{"name":"Celeb"}`,
		"header only":     string(valid[:envelope.HeaderSize-1]),
		"truncated":       string(valid[:10]),
		"unknown version": "\x02" + string(valid[1:]) + `"v"`,
		"unknown flags":   string(valid[:1]) + "\xf0" + string(valid[2:]) + `"v"`,
		"bad payload":     string(valid) + `"unterminated`,
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := redistest.Mini(t)
				c := one[string](t, m)
				require.NoError(t, m.Set("stampede:{k}", stored))
				require.NoError(t, m.Set("stampede:k", "another program's"))
				require.NoError(t, m.Set("k", "another program's"))
				v, err := c.Get(ctx, "k", constLoader("loaded"))
				require.NoError(t, err)
				require.Equal(t, "loaded", v)
				got, _ := m.Get("stampede:{k}")
				_, payload, err := envelope.ParseString(got)
				require.NoError(t, err, "overwritten with an envelope")
				require.Equal(t, `"loaded"`, payload)
				for _, k := range []string{"stampede:k", "k"} {
					v, _ := m.Get(k)
					require.Equal(t, "another program's", v)
				}
			})
		})
	}

	t.Run("another type", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := redistest.Mini(t)
			c := one[string](t, m)
			m.HSet("stampede:{k}", "field", "value")
			src := newSource("loaded")
			for range 3 {
				v, err := c.Get(ctx, "k", src.load, stampede.WithoutL1())
				require.NoError(t, err)
				require.Equal(t, "loaded", v)
			}
			require.Equal(t, "value", m.HGet("stampede:{k}", "field"), "a load does not overwrite it")
			t.Logf("a hash at the value key: %d loads for 3 reads, %d Redis errors", src.calls.Load(), c.Stats().RedisErrors)
		})
	})

	t.Run("a lease that never expires", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := redistest.Mini(t)
			c := one[string](t, m, stampede.WithLeaseTTL(time.Second), stampede.WithLoadTimeout(time.Second))
			require.NoError(t, m.Set("stampede:{k}:lock", "another program's"))
			start := time.Now()
			_, err := c.Get(ctx, "k", constLoader("loaded"))
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "stampede:"), "%v", err)
			t.Logf("a lease without expiry: %v after %v", err, time.Since(start))
			require.LessOrEqual(t, time.Since(start), 3*time.Second+50*time.Millisecond, "bounded by the load timeout and two lease TTLs")
			v, _ := m.Get("stampede:{k}:lock")
			require.Equal(t, "another program's", v)
		})
	})

	t.Run("corrupt fence", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := redistest.Mini(t)
			c := one[string](t, m)
			require.NoError(t, m.Set("stampede:{k}:gen", "not a number"))
			src := newSource("loaded")
			start := time.Now()
			for range 3 {
				v, err := c.Get(ctx, "k", src.load, stampede.WithoutL1())
				require.NoError(t, err)
				require.Equal(t, "loaded", v)
			}
			// Each fill fails, and leaves its lease to expire: the next read waits for it.
			t.Logf("a fence that is not a number: 3 reads took %v and %d loads", time.Since(start), src.calls.Load())
			err := c.Set(ctx, "k", "v")
			require.Error(t, err)
			require.True(t, strings.HasPrefix(err.Error(), "stampede: set"), "%v", err)
		})
	})
}

// keySlot is Redis Cluster's hash slot of key: CRC16 (XMODEM) of its hash tag, the text
// between its first '{' and the next '}' when that text is not empty, else of the whole key.
func keySlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			key = key[open+1 : open+1+n]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc % 16384)
}

func TestKeySlotMatchesRedis(t *testing.T) {
	// Values from CLUSTER KEYSLOT; TestClusterKeySlots compares many more on a real cluster.
	for key, slot := range map[string]int{"foo": 12182, "{user1000}.following": 3443, "{}x": 10595, "a{}{b}": 15033} {
		require.Equal(t, slot, keySlot(key), key)
	}
}
