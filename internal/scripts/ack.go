package scripts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
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
	return whileMoving(ctx, try, reload(ctx, c), moving)
}

// reload returns what whileMoving runs between the tries of a command that runWaited sends to
// a cluster's node itself: the client reloads the slots, whose master may have changed.
func reload(ctx context.Context, c Writer) func() {
	return func() {
		if cc, ok := c.(*redis.ClusterClient); ok {
			cc.ReloadState(ctx)
		}
	}
}

// runWaited runs s, followed by WAIT when a.Replicas > 0, in one pipeline on one connection:
// on a cluster, of the key's master, or of the node it answers ASK with (the key's slot is being
// migrated there, and the keys are not all on the master), after ASKING.
func runWaited(ctx context.Context, c Writer, a Ack, s *redis.Script, keys []string, args []any) *redis.Cmd {
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return runOn(ctx, c, false, a, s, keys, args)
	}
	m, err := cc.MasterForKey(ctx, keys[0])
	if err != nil {
		return failed(ctx, err)
	}
	cmd := runOn(ctx, m, false, a, s, keys, args)
	if addr, ok := asked(cmd.Err()); ok {
		if n := masterAt(ctx, cc, addr); n != nil {
			cmd = runOn(ctx, n, true, a, s, keys, args)
		}
	}
	return cmd
}

func runOn(ctx context.Context, node Writer, asking bool, a Ack, s *redis.Script, keys []string, args []any) *redis.Cmd {
	for eval := false; ; eval = true {
		var cmd *redis.Cmd
		var acked *redis.Cmd
		_, _ = node.Pipelined(ctx, func(p redis.Pipeliner) error {
			if asking {
				p.Do(ctx, "asking")
			}
			if eval {
				cmd = s.Eval(ctx, p, keys, args...) // also loads the script for next time
			} else {
				cmd = s.EvalSha(ctx, p, keys, args...)
			}
			if a.Replicas > 0 {
				acked = p.Do(ctx, "wait", a.Replicas, max(a.Timeout.Milliseconds(), 1))
			}
			return nil
		})
		if !eval && cmd.Err() != nil && strings.HasPrefix(cmd.Err().Error(), "NOSCRIPT") {
			continue
		}
		if cmd.Err() != nil || acked == nil { // a failure, or a fill fenced out (nil): nothing to confirm
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

// asked returns the address of an ASK redirection: "ASK <slot> <addr>".
func asked(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	f := strings.Fields(err.Error())
	if len(f) != 3 || f[0] != "ASK" {
		return "", false
	}
	return f[2], true
}

// masterAt returns the client of the cluster's master at addr, nil if there is none.
func masterAt(ctx context.Context, cc *redis.ClusterClient, addr string) *redis.Client {
	var mu sync.Mutex
	var found *redis.Client
	_ = cc.ForEachMaster(ctx, func(_ context.Context, n *redis.Client) error {
		if n.Options().Addr == addr {
			mu.Lock()
			found = n
			mu.Unlock()
		}
		return nil
	})
	return found
}

func failed(ctx context.Context, err error) *redis.Cmd {
	cmd := redis.NewCmd(ctx)
	cmd.SetErr(err)
	return cmd
}
