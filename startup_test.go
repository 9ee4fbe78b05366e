package stampede_test

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// TestFailFast: with WithFailFast, New returns an error within the Redis timeout when Redis is
// not there; without it, New succeeds and Gets answer through the loader.
func TestFailFast(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer client.Close()
	quiet := stampede.WithLogger(slog.New(slog.DiscardHandler))

	start := time.Now()
	_, err = stampede.New[string](client, stampede.WithFailFast(), stampede.WithRedisTimeout(200*time.Millisecond), quiet)
	require.ErrorContains(t, err, "stampede: Redis is not reachable")
	require.Less(t, time.Since(start), 2*time.Second)

	c, err := stampede.New[string](client, stampede.WithRedisTimeout(200*time.Millisecond), quiet)
	require.NoError(t, err)
	defer c.Close()
	v, err := c.Get(ctx, "k", constLoader("from the loader"))
	require.NoError(t, err)
	require.Equal(t, "from the loader", v)
}

// TestFirstRedisLossIsLogged: the first failure of Redis is logged at Warn once, not once per
// call, and again after Redis answered in between; without WithLogger, to slog.Default.
func TestFirstRedisLossIsLogged(t *testing.T) {
	store := &captured{}
	old := slog.Default()
	slog.SetDefault(slog.New(&captureHandler{store: store}))
	defer slog.SetDefault(old)
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithoutL1())
		lost := func() int {
			store.mu.Lock()
			defer store.mu.Unlock()
			n := 0
			for _, r := range store.records {
				if strings.HasPrefix(r, "WARN stampede: Redis failed") {
					n++
				}
			}
			return n
		}
		for round := 1; round <= 2; round++ {
			m.SetError("ERR down")
			for i := range 3 {
				_, err := c.Get(ctx, "k", constLoader("v"))
				require.NoError(t, err, "call %d", i)
			}
			require.Equal(t, round, lost(), "one warning per loss")
			m.SetError("")
			time.Sleep(time.Second) // the fake clock: past the read path's circuit breaker
			hits := c.Stats().L2Hits
			for range 2 { // a miss that fills Redis, then a hit
				_, err := c.Get(ctx, "k", constLoader("v"))
				require.NoError(t, err)
			}
			require.Equal(t, hits+1, c.Stats().L2Hits, "Redis answered: %+v", c.Stats())
			require.NoError(t, c.Delete(ctx, "k"))
		}
	})
}

type opaque struct{ name string }

// TestNewWarnsOfAValueJSONLoses: New says so when V has no exported field for JSON to keep.
func TestNewWarnsOfAValueJSONLoses(t *testing.T) {
	store := &captured{}
	log := stampede.WithLogger(slog.New(&captureHandler{store: store}))
	m := redistest.Mini(t)
	one[opaque](t, m, log)
	one[User](t, m, log)
	store.mu.Lock()
	defer store.mu.Unlock()
	require.Len(t, store.records, 1)
	require.Contains(t, store.records[0], "stampede_test.opaque has no exported field")
}
