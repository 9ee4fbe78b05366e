package stampede_test

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// refuseInfo is a go-redis hook that refuses INFO as an ACL without it does, and counts how
// often it was asked.
type refuseInfo struct{ asked atomic.Int64 }

func (*refuseInfo) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *refuseInfo) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "info" {
			h.asked.Add(1)
			err := redisError("NOPERM User myapp has no permissions to run the 'info' command")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

func (*refuseInfo) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// redisError is an error reply of Redis, as go-redis reports one (redis.Error).
type redisError string

func (e redisError) Error() string { return string(e) }
func (redisError) RedisError()     {}

// A refused INFO turns off failover detection only: it is reported (Stats, OnRedisError, one
// warning), and reads keep using Redis, because the read path's breaker does not hear of it.
func TestRefusedInfoIsReportedNotFatal(t *testing.T) {
	client := redistest.Client(t, redistest.Mini(t))
	refuse := &refuseInfo{}
	client.AddHook(refuse)
	logs := &captured{}
	var ops atomic.Value
	c, err := stampede.New[string](client, stampede.WithNamespace(redistest.Namespace(t)),
		stampede.WithLogger(slog.New(&captureHandler{store: logs})),
		stampede.WithHooks(stampede.Hooks{OnRedisError: func(op, _ string, err error) {
			ops.Store(op + ": " + err.Error())
		}}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	require.Eventually(t, func() bool { return refuse.asked.Load() > 0 && c.Stats().RedisErrors > 0 },
		5*time.Second, 5*time.Millisecond, "the topology watcher asks for INFO at once, and counts its refusal")
	require.Contains(t, ops.Load(), "info: NOPERM", "OnRedisError names the INFO call")
	require.Contains(t, strings.Join(logs.all(), "\n"), "op=info", "the first failure is logged")

	for range 10 { // twice the breaker's threshold
		_, err := c.Get(ctx, "k", func(context.Context, string) (string, error) { return "v", nil })
		require.NoError(t, err)
	}
	require.Zero(t, c.Stats().Loads-1, "reads still use Redis: the value loaded once is read back")
}

// Close cancels the topology watcher's INFO: that is no Redis failure, and logs nothing.
func TestCloseIsNoRedisFailure(t *testing.T) {
	for range 20 {
		logs := &captured{}
		client := redistest.Client(t, redistest.Mini(t))
		var reported atomic.Int64
		c, err := stampede.New[string](client, stampede.WithNamespace(redistest.Namespace(t)),
			stampede.WithLogger(slog.New(&captureHandler{store: logs})),
			stampede.WithHooks(stampede.Hooks{OnRedisError: func(string, string, error) { reported.Add(1) }}))
		require.NoError(t, err)
		require.NoError(t, c.Close())
		require.Zero(t, reported.Load(), "Close cancelled a Redis call, which is no failure")
		for _, r := range logs.all() {
			require.False(t, strings.Contains(r, "Redis failed"), "logged at Close: %s", r)
		}
	}
}

// all returns a copy of the records kept so far.
func (c *captured) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.records...)
}
