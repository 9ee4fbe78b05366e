package stampede

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede/internal/scripts"
)

const (
	// healthEvery is how long the subscription may be silent before it is pinged; a ping not
	// answered within the same time counts as a lost connection.
	healthEvery = time.Second
	// pollEvery is how often a waiter looks at Redis while no subscription carries
	// notifications.
	pollEvery = 100 * time.Millisecond
	// resubscribeMax bounds the back-off between attempts to subscribe. It is short: while
	// there is no subscription, writes elsewhere do not reach the L1, and a failover's new
	// primary should be subscribed to within a moment of its promotion. An attempt costs a
	// dial.
	resubscribeMax = 400 * time.Millisecond
)

var errUnsubscribed = errors.New("stampede: Redis ended the subscription")

// notifier owns a Cache's one pub/sub subscription, on its namespace's channel, and hands each
// message to the waiters of its key and to the cache (which evicts the key from its L1).
//
// While no subscription is confirmed, waiters poll; each time one is confirmed (first, or again
// after a loss), messages may have been missed, so the cache clears its L1 and every waiter
// looks at Redis again.
type notifier struct {
	client  redisClient
	channel string
	timeout time.Duration
	log     *slog.Logger
	failed  func(op, key string, err error) // reports a failed Redis call to Stats and Hooks
	handle  func(scripts.Message)           // called for each message, before its waiters are woken
	reset   func()                          // called when a subscription is confirmed

	// ignoresDeadlines: the client does not apply a context's deadline to its connections
	// (no ContextTimeoutEnabled), so calls that could block are bounded here.
	ignoresDeadlines bool

	// sharded: the channel is an eviction stripe's (coalesce.go), subscribed with SSUBSCRIBE
	// unless plain says that Redis has no sharded pub/sub; each message goes to raw, and
	// nobody waits on it.
	sharded bool
	plain   *atomic.Bool
	raw     func(payload string)
	// pubsub, if set, opens the subscription's PubSub instead of client.Subscribe: on a
	// cluster, a stripe's subscription goes to the master of its slot (see shardPubSub).
	pubsub func(ctx context.Context) *redis.PubSub

	subscribed atomic.Bool  // a confirmed subscription carries messages
	lostAt     atomic.Int64 // when a subscription was last lost, Unix nanoseconds

	// kick asks run to subscribe again at once, on the primary the client now names.
	kick chan struct{}

	mu      sync.Mutex
	waiters map[string][]*waiter // guarded by mu
	ps      *redis.PubSub        // guarded by mu; the subscription, being confirmed or current; nil if none
	closed  bool                 // guarded by mu
}

// A waiter receives the messages of one key, at most one at a time: a second message while one
// is pending is dropped, as the waiter looks at Redis on any message.
type waiter struct {
	key string
	c   chan scripts.Message
}

// watch registers a waiter for key. Register before looking at Redis, so that a message
// published in between is not missed.
func (n *notifier) watch(key string) *waiter {
	w := &waiter{key: key, c: make(chan scripts.Message, 1)}
	n.mu.Lock()
	if n.waiters == nil {
		n.waiters = make(map[string][]*waiter)
	}
	n.waiters[key] = append(n.waiters[key], w)
	n.mu.Unlock()
	return w
}

func (n *notifier) unwatch(w *waiter) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ws := n.waiters[w.key]
	for i, x := range ws {
		if x == w {
			ws[i] = ws[len(ws)-1]
			ws[len(ws)-1] = nil
			ws = ws[:len(ws)-1]
			break
		}
	}
	if len(ws) == 0 {
		delete(n.waiters, w.key)
	} else {
		n.waiters[w.key] = ws
	}
}

// wake hands m to the waiters of its key, or to every waiter when all is true.
func (n *notifier) wake(m scripts.Message, all bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	send := func(ws []*waiter) {
		for _, w := range ws {
			select {
			case w.c <- m:
			default:
			}
		}
	}
	if !all {
		send(n.waiters[m.Key])
		return
	}
	for _, ws := range n.waiters {
		send(ws)
	}
}

// subscribe opens a subscription and waits for Redis to confirm it, for at most the Redis
// timeout. Close closes it meanwhile too.
func (n *notifier) subscribe(ctx context.Context) (*redis.PubSub, error) {
	ctx, cancel := context.WithTimeout(ctx, n.timeout)
	defer cancel()
	var ps *redis.PubSub
	if n.pubsub != nil {
		ps = n.pubsub(ctx)
	} else {
		ps = n.client.Subscribe(ctx) // no channel yet: no I/O
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		n.closePubSub(ps)
		return nil, ErrClosed
	}
	n.ps = ps
	n.mu.Unlock()
	sharded := n.sharded && !n.plain.Load()
	confirm := func() error {
		subscribe := ps.Subscribe
		if sharded {
			subscribe = ps.SSubscribe
		}
		if err := subscribe(ctx, n.channel); err != nil {
			return err
		}
		msg, err := ps.ReceiveTimeout(ctx, n.timeout)
		if _, ok := msg.(*redis.Subscription); err == nil && !ok {
			err = errors.New("stampede: unexpected reply to SUBSCRIBE")
		}
		return err
	}
	var err error
	if n.ignoresDeadlines {
		err = bounded(ctx, confirm, func(err error) error { return err })
	} else {
		err = confirm()
	}
	n.mu.Lock()
	if err == nil && n.closed {
		err = ErrClosed
	}
	if err != nil && n.ps == ps {
		n.ps = nil
	}
	n.mu.Unlock()
	if err != nil {
		n.closePubSub(ps)
		if sharded && scripts.IsUnknownCommand(err) {
			// No sharded pub/sub (Redis 6, an in-process Redis): the flushes PUBLISH instead.
			n.plain.Store(true)
			return n.subscribe(ctx)
		}
		return nil, err
	}
	return ps, nil
}

// closePubSub closes ps. go-redis's Close waits for a subscribe in progress on ps, which a
// client that ignores deadlines may hold for its own timeouts: then it closes in the
// background.
func (n *notifier) closePubSub(ps *redis.PubSub) {
	if n.ignoresDeadlines {
		go func() { _ = ps.Close() }()
		return
	}
	_ = ps.Close()
}

// run keeps a subscription until Close, resubscribing with back-off when it is lost. first is
// the subscription New opened and confirmed, or nil.
func (n *notifier) run(ctx context.Context, first *redis.PubSub) {
	ps := first
	backoff := pollEvery
	for {
		if ps == nil {
			var err error
			if ps, err = n.subscribe(ctx); err != nil {
				if ctx.Err() != nil || errors.Is(err, ErrClosed) {
					return
				}
				n.failed("subscribe", "", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(backoff):
				case <-n.kick:
					backoff = pollEvery // the primary changed: try the new one now
				}
				backoff = min(2*backoff, resubscribeMax)
				continue
			}
			n.confirmed()
		}
		backoff = pollEvery
		err := n.receive(ctx, ps)
		n.lost(ps)
		if ctx.Err() != nil {
			return
		}
		n.log.Warn("stampede: subscription lost; waiters poll until it is back", "channel", n.channel, "err", err)
		n.failed("subscribe", "", err)
		ps = nil
	}
}

// receive reads messages until the subscription fails.
func (n *notifier) receive(ctx context.Context, ps *redis.PubSub) error {
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, healthEvery)
		if err != nil {
			var ne net.Error
			if !pinged && errors.As(err, &ne) && ne.Timeout() {
				// Silence: make sure the connection is alive. go-redis reports a ping that
				// cannot be written; one that gets no answer shows as the next timeout.
				pctx, cancel := context.WithTimeout(ctx, n.timeout)
				err := ps.Ping(pctx)
				cancel()
				if err == nil {
					pinged = true
					continue
				}
			}
			return err
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Message:
			if n.raw != nil {
				n.raw(m.Payload)
				continue
			}
			parsed, err := scripts.ParseMessage(m.Payload)
			if err != nil {
				n.log.Warn("stampede: ignoring a malformed message", "channel", n.channel, "err", err)
				continue
			}
			n.handle(parsed)
			n.wake(parsed, false)
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe", "ssubscribe":
				// go-redis reconnected and subscribed again by itself: messages may be lost.
				n.confirmed()
			case "sunsubscribe", "unsubscribe":
				// Redis ended it: a node that no longer serves a shard channel's slot (a
				// master demoted in a failover, a slot moved) unsubscribes its subscribers,
				// on a connection that stays up and answers pings.
				return errUnsubscribed
			}
		}
	}
}

func (n *notifier) confirmed() {
	n.subscribed.Store(true)
	n.reset()
	n.wake(scripts.Message{Kind: scripts.Released}, true)
}

func (n *notifier) lost(ps *redis.PubSub) {
	n.subscribed.Store(false)
	n.lostAt.Store(time.Now().UnixNano())
	n.reset() // messages are lost from now on: what the L1 holds may be replaced unseen
	n.mu.Lock()
	if n.ps == ps {
		n.ps = nil
	}
	n.mu.Unlock()
	n.closePubSub(ps)
	n.wake(scripts.Message{Kind: scripts.Released}, true)
}

// move subscribes again, on the primary the client names now: after a failover, the
// subscription may stay on the old primary, which hears nothing of the writes on the new one
// until Sentinel makes it a replica (seconds later).
func (n *notifier) move() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
	n.mu.Lock()
	ps := n.ps
	n.mu.Unlock()
	if ps != nil {
		n.closePubSub(ps) // run sees the subscription fail and subscribes again
	}
}

// close ends the subscription; run returns.
func (n *notifier) close() {
	n.mu.Lock()
	n.closed = true
	ps := n.ps
	n.mu.Unlock()
	if ps != nil {
		n.closePubSub(ps)
	}
}
