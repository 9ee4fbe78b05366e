package stampede

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// errRing is New's answer to a *redis.Ring. A Ring shards keys over independent nodes by its
// own hash, and a script's PUBLISH reaches only the subscribers of the node that ran it, while
// the cache's one subscription lives on one node: notifications would be lost on the others.
var errRing = errors.New("stampede: *redis.Ring is not supported: a Ring's nodes do not share " +
	"pub/sub, so lease notifications and L1 evictions would be lost; use a *redis.Client " +
	"(single node or Sentinel) or a *redis.ClusterClient")

// honorsDeadlines reports whether client applies a context's deadline to its socket reads and
// writes (go-redis's ContextTimeoutEnabled), and whether that could be told: only the clients
// that expose their options can.
func honorsDeadlines(client redis.UniversalClient) (honors, known bool) {
	switch c := client.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled, true
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled, true
	}
	return false, false
}

// deadlineClient bounds every call of a client that ignores context deadlines: the call runs on
// a goroutine of its own, and the caller stops waiting when its context ends. The call goes on
// until go-redis's own timeouts end it; its result is dropped. This costs a goroutine per Redis
// call, which is why New warns that ContextTimeoutEnabled should be set instead.
type deadlineClient struct {
	redisClient
}

// bounded returns call's result, or failed(ctx.Err()) if ctx ends first.
func bounded[T any](ctx context.Context, call func() T, failed func(error) T) T {
	done := make(chan T, 1)
	go func() { done <- call() }()
	select {
	case r := <-done:
		return r
	case <-ctx.Done():
		return failed(ctx.Err())
	}
}

func (d deadlineClient) Get(ctx context.Context, key string) *redis.StringCmd {
	return bounded(ctx, func() *redis.StringCmd { return d.redisClient.Get(ctx, key) }, func(err error) *redis.StringCmd {
		cmd := redis.NewStringCmd(ctx, "get", key)
		cmd.SetErr(err)
		return cmd
	})
}

func (d deadlineClient) Set(ctx context.Context, key string, value any, expiration time.Duration) *redis.StatusCmd {
	return bounded(ctx, func() *redis.StatusCmd { return d.redisClient.Set(ctx, key, value, expiration) }, func(err error) *redis.StatusCmd {
		cmd := redis.NewStatusCmd(ctx, "set", key)
		cmd.SetErr(err)
		return cmd
	})
}

func (d deadlineClient) Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error) {
	type reply struct {
		cmds []redis.Cmder
		err  error
	}
	r := bounded(ctx, func() reply {
		cmds, err := d.redisClient.Pipelined(ctx, fn)
		return reply{cmds, err}
	}, func(err error) reply { return reply{nil, err} })
	return r.cmds, r.err
}

func (d deadlineClient) script(ctx context.Context, call func() *redis.Cmd) *redis.Cmd {
	return bounded(ctx, call, func(err error) *redis.Cmd {
		cmd := redis.NewCmd(ctx)
		cmd.SetErr(err)
		return cmd
	})
}

func (d deadlineClient) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return d.script(ctx, func() *redis.Cmd { return d.redisClient.Eval(ctx, script, keys, args...) })
}

func (d deadlineClient) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return d.script(ctx, func() *redis.Cmd { return d.redisClient.EvalSha(ctx, sha1, keys, args...) })
}

func (d deadlineClient) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return d.script(ctx, func() *redis.Cmd { return d.redisClient.EvalRO(ctx, script, keys, args...) })
}

func (d deadlineClient) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return d.script(ctx, func() *redis.Cmd { return d.redisClient.EvalShaRO(ctx, sha1, keys, args...) })
}

func (d deadlineClient) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return bounded(ctx, func() *redis.BoolSliceCmd { return d.redisClient.ScriptExists(ctx, hashes...) }, func(err error) *redis.BoolSliceCmd {
		cmd := redis.NewBoolSliceCmd(ctx)
		cmd.SetErr(err)
		return cmd
	})
}

func (d deadlineClient) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return bounded(ctx, func() *redis.StringCmd { return d.redisClient.ScriptLoad(ctx, script) }, func(err error) *redis.StringCmd {
		cmd := redis.NewStringCmd(ctx)
		cmd.SetErr(err)
		return cmd
	})
}

func (d deadlineClient) Info(ctx context.Context, sections ...string) *redis.StringCmd {
	return bounded(ctx, func() *redis.StringCmd { return d.redisClient.Info(ctx, sections...) }, func(err error) *redis.StringCmd {
		cmd := redis.NewStringCmd(ctx, "info")
		cmd.SetErr(err)
		return cmd
	})
}

func (d deadlineClient) PTTL(ctx context.Context, key string) *redis.DurationCmd {
	return bounded(ctx, func() *redis.DurationCmd { return d.redisClient.PTTL(ctx, key) }, func(err error) *redis.DurationCmd {
		cmd := redis.NewDurationCmd(ctx, time.Millisecond)
		cmd.SetErr(err)
		return cmd
	})
}
