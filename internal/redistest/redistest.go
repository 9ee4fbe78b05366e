// Package redistest gives tests a Redis: an in-process miniredis for unit tests, and the real
// Redis (and PostgreSQL) named by the environment for integration tests.
//
// Integration tests call Addr or PostgresURL. They skip when the variable is unset, unless
// STAMPEDE_REQUIRE_INTEGRATION=1, which CI sets so that a missing service fails the run.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Mini starts an in-process Redis whose key expiry follows time.Now, so that inside a
// testing/synctest bubble it follows the bubble's fake clock. It is closed when the test ends.
func Mini(t testing.TB) *miniredis.Miniredis {
	t.Helper()
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true)
	t.Cleanup(m.Close)
	return m
}

// Client returns a go-redis client of m that connects in memory (no TCP), as a synctest bubble
// needs. It is closed when the test ends.
func Client(t testing.TB, m *miniredis.Miniredis) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		// An IP address and no maintenance notifications: go-redis resolves a host name to
		// classify the endpoint, which a synctest bubble forbids.
		Addr:                     "127.0.0.1:6379",
		Dialer:                   func(context.Context, string, string) (net.Conn, error) { return m.Dial() },
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		// Enough connections that no caller waits for one: go-redis waits on timers from a
		// process-wide pool, which a synctest bubble may not touch.
		PoolSize:              4096,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Required reports whether integration services must be present (STAMPEDE_REQUIRE_INTEGRATION=1).
func Required() bool { return os.Getenv("STAMPEDE_REQUIRE_INTEGRATION") == "1" }

// Addr returns the address of the real Redis in STAMPEDE_REDIS_ADDR, or skips the test.
func Addr(t testing.TB) string {
	t.Helper()
	return env(t, "STAMPEDE_REDIS_ADDR")
}

// PostgresURL returns the connection string in STAMPEDE_POSTGRES_URL, or skips the test.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return env(t, "STAMPEDE_POSTGRES_URL")
}

// Real returns a client of the real Redis, checked with PING, closed when the test ends.
func Real(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: Addr(t), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redistest: STAMPEDE_REDIS_ADDR=%s: %v", Addr(t), err)
	}
	return c
}

// Namespace returns a namespace no other test uses, so that tests can share one real Redis.
func Namespace(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", ".", " ", "_", "{", "(", "}", ")").Replace(t.Name())
	return "test:" + name + ":" + hex.EncodeToString(b[:])
}

func env(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if Required() {
			t.Fatalf("redistest: %s is not set and STAMPEDE_REQUIRE_INTEGRATION=1", name)
		}
		t.Skipf("redistest: %s is not set; integration test skipped", name)
	}
	return v
}

// KillableClient is Client, with a function that breaks every connection the client has open,
// as a network failure would; the client reconnects on its next command.
func KillableClient(t testing.TB, m *miniredis.Miniredis) (*redis.Client, func()) {
	t.Helper()
	var mu sync.Mutex
	var conns []net.Conn
	c := Client(t, m)
	opt := c.Options()
	_ = c.Close()
	opt.Dialer = func(context.Context, string, string) (net.Conn, error) {
		conn, err := m.Dial()
		if err == nil {
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
		return conn, err
	}
	c = redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c, func() {
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range conns {
			_ = conn.Close()
		}
		conns = nil
	}
}

// NoSubscribe wraps c so that its subscriptions fail, as with a client whose server or proxy
// refuses SUBSCRIBE.
func NoSubscribe(c *redis.Client) redis.UniversalClient {
	dead := redis.NewClient(&redis.Options{
		Addr:                     "127.0.0.1:6379",
		Dialer:                   func(context.Context, string, string) (net.Conn, error) { return nil, errNoSubscribe },
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		MaxRetries:               -1,
	})
	return noSubscribe{Client: c, dead: dead}
}

var errNoSubscribe = errors.New("redistest: SUBSCRIBE refused")

type noSubscribe struct {
	*redis.Client
	dead *redis.Client
}

func (n noSubscribe) Subscribe(ctx context.Context, channels ...string) *redis.PubSub {
	return n.dead.Subscribe(ctx, channels...)
}

func (n noSubscribe) Close() error {
	_ = n.dead.Close()
	return n.Client.Close()
}
