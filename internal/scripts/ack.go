package scripts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Ack asks a write to be acknowledged by Replicas replicas of the primary that took it (WAIT),
// within Timeout. Replication is asynchronous: without it, a write the primary acknowledged can
// be lost when a replica that lacks it is promoted. The zero Ack does not wait.
type Ack struct {
	Replicas int
	Timeout  time.Duration
}

// ErrUnconfirmed reports a write that the primary took but not enough replicas acknowledged in
// time: it may be lost in a failover. Writing it again is safe.
var ErrUnconfirmed = errors.New("scripts: write not acknowledged by a replica")

// Writer is what an acknowledged write needs: the scripts, and a pipeline, so that WAIT runs on
// the connection of the write it waits for.
type Writer interface {
	Scripter
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// runAcked runs s on c and, when a.Replicas > 0, waits for the replicas in the same round trip
// on the same connection; on a cluster, on the connection of the key's master. It returns the
// script's reply, or ErrUnconfirmed (wrapped) when too few replicas acknowledged it.
func runAcked(ctx context.Context, c Writer, a Ack, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	if a.Replicas <= 0 {
		return run(ctx, c, s, keys, args...)
	}
	try := func() *redis.Cmd { return runWaited(ctx, c, a, s, keys, args) }
	return whileMoving(ctx, try, func() {
		if cc, ok := c.(*redis.ClusterClient); ok {
			cc.ReloadState(ctx) // the master of the key moved
		}
	})
}

func runWaited(ctx context.Context, c Writer, a Ack, s *redis.Script, keys []string, args []any) *redis.Cmd {
	var node Writer = c
	if cc, ok := c.(*redis.ClusterClient); ok {
		m, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			cmd := redis.NewCmd(ctx)
			cmd.SetErr(err)
			return cmd
		}
		node = m
	}
	for eval := false; ; eval = true {
		var cmd *redis.Cmd
		var acked *redis.Cmd
		_, _ = node.Pipelined(ctx, func(p redis.Pipeliner) error {
			if eval {
				cmd = s.Eval(ctx, p, keys, args...) // also loads the script for next time
			} else {
				cmd = s.EvalSha(ctx, p, keys, args...)
			}
			acked = p.Do(ctx, "wait", a.Replicas, max(a.Timeout.Milliseconds(), 1))
			return nil
		})
		if !eval && cmd.Err() != nil && strings.HasPrefix(cmd.Err().Error(), "NOSCRIPT") {
			continue
		}
		if cmd.Err() != nil { // a failure, or a fill fenced out (nil): nothing to confirm
			return cmd
		}
		if err := acked.Err(); err != nil {
			cmd.SetErr(err)
		} else if n, _ := acked.Int64(); n < int64(a.Replicas) {
			cmd.SetErr(fmt.Errorf("%w (%d of %d in %v)", ErrUnconfirmed, n, a.Replicas, a.Timeout))
		}
		return cmd
	}
}
