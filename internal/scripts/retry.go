package scripts

import (
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// retryFirst and retryMax bound the back-off between the runs of a script whose slot is
	// moving; the caller's context (the cache's Redis timeout) bounds the whole.
	retryFirst = 2 * time.Millisecond
	retryMax   = 50 * time.Millisecond
)

// run runs s, and runs it again while Redis answers that its keys' slot is moving, until ctx
// ends. A slot migration moves the keys of a user key one at a time: while they are split
// between two nodes, a script that touches them runs on neither (TRYAGAIN), and go-redis gives
// up after a few quick tries. Redis rejects such a script before it runs, so running it again
// is safe.
func run(ctx context.Context, c Scripter, s *redis.Script, keys []string, args ...any) *redis.Cmd {
	return whileMoving(ctx, func() *redis.Cmd { return s.Run(ctx, c, keys, args...) }, nil, moving)
}

// whileMoving calls try until its reply is not one that retry accepts (moving, or
// movingElsewhere), or ctx ends, backing off from retryFirst to retryMax; moved runs before
// each new try.
func whileMoving(ctx context.Context, try func() *redis.Cmd, moved func(), retry func(error) bool) *redis.Cmd {
	wait := retryFirst
	for {
		cmd := try()
		if !retry(cmd.Err()) {
			return cmd
		}
		if moved != nil {
			moved()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return cmd
		case <-t.C:
		}
		wait = min(2*wait, retryMax)
	}
}

// moving reports whether err says that the slot of a command's keys is being moved or
// reassigned, so that the command may succeed when retried shortly.
func moving(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	for _, prefix := range []string{"TRYAGAIN", "ASK ", "MOVED ", "CLUSTERDOWN"} {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

// tryAgain reports whether err is Redis refusing a command on several keys of a slot that is
// being migrated, because the node does not have all of them. A command on a single key is
// never refused so.
func tryAgain(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "TRYAGAIN")
}

// movingElsewhere is moving, but for TRYAGAIN, which a write that can do without a multi-key
// script (see writeOpen) does not wait out.
func movingElsewhere(err error) bool {
	return moving(err) && !tryAgain(err)
}
