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

// Batches run the single-key scripts' bodies once per user key, inside one script call: the
// lease, fill, release, set, invalidate and delete of many keys in one round trip. A batch
// script defines the body as a Lua function whose parameters are named KEYS and ARGV, which
// shadow the globals, and calls it with each key's slice of them. So a key's part of a batch
// does exactly what the single-key script does (its fence, its lease, its messages through
// the prelude's publish), and a change to a body changes both.
//
// Every key of one batch call must hash to one slot on a Redis Cluster: group them with
// GroupBySlot first.

// batchOf returns the batch script of body, whose single-key form takes nkeys KEYS and nargs
// ARGV. Its KEYS are the keys of each item in turn, its ARGV the arguments of each item in
// turn; it returns a list of the body's replies (false for a nil reply).
func batchOf(body string, nkeys, nargs int) *redis.Script {
	return redis.NewScript(prelude + `
local function one(KEYS, ARGV)
` + body + `
end
local nk, na = ` + strconv.Itoa(nkeys) + `, ` + strconv.Itoa(nargs) + `
local res = {}
local k, a = {}, {} -- reused: a body keeps neither
for i = 0, #KEYS / nk - 1 do
  for j = 1, nk do k[j] = KEYS[i * nk + j] end
  for j = 1, na do a[j] = ARGV[i * na + j] end
  local r = one(k, a)
  if r == nil then r = false end
  res[i + 1] = r
end
return res
`)
}

var (
	leaseBatch      = batchOf(leaseBody, 4, 5)
	fillBatch       = batchOf(fillBody, 4, 8)
	releaseBatch    = batchOf(releaseBody, 1, 3)
	extendBatch     = batchOf(extendBody, 1, 2)
	setBatch        = batchOf(setBody, 2, 5)
	invalidateBatch = batchOf(invalidateBody, 2, 3)
	deleteBatch     = batchOf(deleteBody, 2, 3)
)

// GroupBySlot returns the indexes 0..n-1 of items grouped by the slot of key(i): one group per
// slot on a cluster, or one group of all of them when cluster is false (a single node runs a
// script on any keys).
func GroupBySlot(n int, key func(i int) string, cluster bool) [][]int {
	if n == 0 {
		return nil
	}
	if !cluster {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return [][]int{all}
	}
	at := make(map[int]int) // slot -> index in groups
	var groups [][]int
	for i := range n {
		s := Slot(key(i))
		g, ok := at[s]
		if !ok {
			g = len(groups)
			at[s] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// A Call is one batch script call of a pipeline: a group of keys of one slot.
type Call struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

// Pipelined runs calls in one pipeline (go-redis splits it per node: one round trip per
// node), and runs again, with EVAL, the calls a node did not know the script of. Each call's
// outcome, or error, is in its reply (Err, and the *Results methods).
func Pipelined(ctx context.Context, c Writer, calls []*Call) {
	send := func(eval bool, todo []*Call) {
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, call := range todo {
				if eval {
					call.cmd = call.script.Eval(ctx, p, call.keys, call.args...)
				} else {
					call.cmd = call.script.EvalSha(ctx, p, call.keys, call.args...)
				}
			}
			return nil
		})
	}
	send(false, calls)
	var again []*Call
	for _, call := range calls {
		if err := call.cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			again = append(again, call)
		}
	}
	if len(again) > 0 {
		send(true, again)
	}
}

// Err returns the error of the call's reply.
func (c *Call) Err() error { return c.cmd.Err() }

func (c *Call) replies(n int) ([]any, error) {
	res, err := c.cmd.Slice()
	if err != nil {
		return nil, err
	}
	if len(res) != n {
		return nil, fmt.Errorf("scripts: batch of %d returned %d replies", n, len(res))
	}
	return res, nil
}

// LeaseCall is Lease of each of ks, with its args, in one call.
func LeaseCall(ks []Keys, a []LeaseArgs) *Call {
	call := &Call{script: leaseBatch, keys: make([]string, 0, 4*len(ks)), args: make([]any, 0, 5*len(ks))}
	for i, k := range ks {
		lock := "1"
		if a[i].NoLock {
			lock = "0"
		}
		seen := a[i].Seen
		if seen == nil {
			seen = []byte{}
		}
		call.keys = append(call.keys, k.Value, k.Lock, k.Gen, k.Wait)
		call.args = append(call.args, a[i].Token, ms(a[i].LeaseTTL), seen, lock, ms(a[i].GenTTL))
	}
	return call
}

// LeaseResults returns what each key's lease found, in the order of LeaseCall's keys.
func (c *Call) LeaseResults(n int) ([]LeaseResult, error) {
	res, err := c.replies(n)
	if err != nil {
		return nil, err
	}
	out := make([]LeaseResult, n)
	for i, r := range res {
		pair, ok := r.([]any)
		if !ok || len(pair) != 2 {
			return nil, fmt.Errorf("scripts: lease returned %v", r)
		}
		state, _ := pair[0].(int64)
		switch LeaseState(state) {
		case Changed:
			v, ok := pair[1].(string)
			if !ok {
				return nil, fmt.Errorf("scripts: lease returned %v", r)
			}
			out[i] = LeaseResult{State: Changed, Value: v}
		case Acquired:
			f, ok := pair[1].(string)
			if !ok {
				return nil, fmt.Errorf("scripts: lease returned %v", r)
			}
			out[i] = LeaseResult{State: Acquired, Fence: f}
		case Held:
			left, _ := pair[1].(int64)
			out[i] = LeaseResult{State: Held, Remaining: time.Duration(max(left, 0)) * time.Millisecond}
		default:
			return nil, fmt.Errorf("scripts: lease returned %v", r)
		}
	}
	return out, nil
}

// FillCall is Fill of each of ks, with its args (no Ack: a load's fill does not wait), in one
// call.
func FillCall(ks []Keys, a []FillArgs) *Call {
	call := &Call{script: fillBatch, keys: make([]string, 0, 4*len(ks)), args: make([]any, 0, 8*len(ks))}
	for i, k := range ks {
		f := &a[i]
		call.keys = append(call.keys, k.Value, k.Lock, k.Gen, k.Wait)
		call.args = append(call.args, f.Token, f.Fence, f.Envelope, ms(f.TTL), ms(f.GenTTL), f.Channel, f.Key, MaxMessageValue)
	}
	return call
}

// FillResult is the outcome of one key's fill: what it wrote, or OK false when a newer write
// fenced the load out.
type FillResult struct {
	Written
	OK bool
}

// FillResults returns each key's fill, in the order of FillCall's keys.
func (c *Call) FillResults(n int) ([]FillResult, error) {
	res, err := c.replies(n)
	if err != nil {
		return nil, err
	}
	out := make([]FillResult, n)
	for i, r := range res {
		if g, ok := r.(int64); ok {
			out[i] = FillResult{Written: written(g), OK: true}
		}
	}
	return out, nil
}

// ReleaseCall is Release of each of ks's lease held by tokens[i], publishing msgs[i], in one
// call.
func ReleaseCall(ks []Keys, tokens []string, channel string, msgs [][]byte) *Call {
	call := &Call{script: releaseBatch, keys: make([]string, 0, len(ks)), args: make([]any, 0, 3*len(ks))}
	for i, k := range ks {
		call.keys = append(call.keys, k.Lock)
		call.args = append(call.args, tokens[i], channel, msgs[i])
	}
	return call
}

// ExtendCall is Extend of each of ks's lease held by tokens[i], in one call.
func ExtendCall(ks []Keys, tokens []string, ttl time.Duration) *Call {
	call := &Call{script: extendBatch, keys: make([]string, 0, len(ks)), args: make([]any, 0, 2*len(ks))}
	for i, k := range ks {
		call.keys = append(call.keys, k.Lock)
		call.args = append(call.args, tokens[i], ms(ttl))
	}
	return call
}

// A Write is one key's part of a batch write: SetMany's envelope, or none for a delete or an
// invalidation.
type Write struct {
	Keys  Keys
	Key   string        // the user key, for the message
	Route string        // where its eviction goes (see Route), or the namespace's channel
	Env   []byte        // Set only
	TTL   time.Duration // Set only
}

// WriteOp says which write a batch makes.
type WriteOp byte

const (
	// OpSet writes each envelope (Set).
	OpSet WriteOp = 's'
	// OpInvalidate marks each value stale (Invalidate).
	OpInvalidate WriteOp = 'i'
	// OpDelete removes each value (Delete).
	OpDelete WriteOp = 'd'
)

func writeCall(op WriteOp, ws []Write, genTTL time.Duration) *Call {
	call := &Call{keys: make([]string, 0, 2*len(ws)), args: make([]any, 0, 5*len(ws))}
	for _, w := range ws {
		call.keys = append(call.keys, w.Keys.Value, w.Keys.Gen)
		switch op {
		case OpSet:
			call.script = setBatch
			call.args = append(call.args, w.Env, ms(w.TTL), ms(genTTL), w.Route, w.Key)
		case OpInvalidate:
			call.script = invalidateBatch
			call.args = append(call.args, ms(genTTL), w.Route, w.Key)
		default:
			call.script = deleteBatch
			call.args = append(call.args, ms(genTTL), w.Route, w.Key)
		}
	}
	return call
}

// WriteBatch makes op's write of each of ws, which share one slot on a cluster, in one script
// call acknowledged by a's replicas, and returns what each key's write did. While the slot is
// being migrated (TRYAGAIN), it makes each key's write alone, as Set, Invalidate and Delete
// do then.
func WriteBatch(ctx context.Context, c Writer, a Ack, op WriteOp, ws []Write, genTTL time.Duration) ([]Written, error) {
	call := writeCall(op, ws, genTTL)
	try := func() *redis.Cmd { return call.script.Run(ctx, c, call.keys, call.args...) }
	if a.Replicas > 0 {
		try = func() *redis.Cmd { return runWaited(ctx, c, a, call.script, call.keys, call.args) }
	}
	cmd := whileMoving(ctx, try, reload(ctx, c), movingElsewhere)
	gens := make([]Written, len(ws))
	if tryAgain(cmd.Err()) && ctx.Err() == nil {
		var errs []error
		for i, w := range ws {
			var err error
			switch op {
			case OpSet:
				gens[i], err = Set(ctx, c, a, w.Keys, w.Env, w.TTL, genTTL, w.Route, w.Key)
			case OpInvalidate:
				gens[i], err = Invalidate(ctx, c, a, w.Keys, genTTL, w.Route, w.Key)
			default:
				gens[i], err = Delete(ctx, c, a, w.Keys, genTTL, w.Route, w.Key)
			}
			errs = append(errs, err)
		}
		return gens, errors.Join(errs...)
	}
	call.cmd = cmd
	res, err := call.replies(len(ws))
	if err != nil {
		return gens, err
	}
	for i, r := range res {
		g, _ := r.(int64)
		gens[i] = written(g)
	}
	return gens, nil
}
