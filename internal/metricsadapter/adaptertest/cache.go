package adaptertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

var ctx = context.Background()

// NewCache starts a cache of strings on m, closed when the test ends.
func NewCache(t testing.TB, m *miniredis.Miniredis, opts ...stampede.Option) *stampede.Cache[string] {
	t.Helper()
	c, err := stampede.New[string](redistest.Client(t, m), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// FixedSource is a Source of fixed counters and hot keys.
type FixedSource struct {
	Counters stampede.Stats
	Keys     []stampede.HotKey
}

// Stats returns s.Counters.
func (s FixedSource) Stats() stampede.Stats { return s.Counters }

// HotKeys returns s.Keys.
func (s FixedSource) HotKeys() []stampede.HotKey { return s.Keys }

// LoadTime is how long every test loader takes, on the fake clock of a synctest bubble.
const LoadTime = 20 * time.Millisecond

// ErrDatabase is the error of a failing loader.
var ErrDatabase = errors.New("database is down")

// Loader returns a loader that takes LoadTime and then returns value, or err if not nil.
func Loader(value string, err error) stampede.Loader[string] {
	return func(ctx context.Context, key string) (string, error) {
		time.Sleep(LoadTime)
		if err != nil {
			return "", err
		}
		return value, nil
	}
}

// GetOnce gets a key through a new cache that has m's hooks and that m observes: a miss, and
// one load that takes LoadTime. Run it in a synctest bubble, for LoadTime to be exact.
func GetOnce(t *testing.T, m Metrics) {
	t.Helper()
	c := NewCache(t, redistest.Mini(t), stampede.WithHooks(m.Hooks()))
	m.Observe(c)
	_, err := c.Get(ctx, "k", Loader("v", nil))
	require.NoError(t, err)
}
