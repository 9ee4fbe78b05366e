package harness

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/redistest"
)

func TestRunID(t *testing.T) {
	a, b := RunID(), RunID()
	require.Len(t, a, 8)
	require.NotEqual(t, a, b)
}

func TestRedisOptions(t *testing.T) {
	opts, err := RedisOptions("10.0.0.1:6380")
	require.NoError(t, err)
	o := opts()
	require.Equal(t, "10.0.0.1:6380", o.Addr)
	require.True(t, o.ContextTimeoutEnabled)
	o.Addr = "changed"
	require.Equal(t, "10.0.0.1:6380", opts().Addr, "each call a copy")

	opts, err = RedisOptions("redis://:secret@10.0.0.2:6381/3")
	require.NoError(t, err)
	o = opts()
	require.Equal(t, "10.0.0.2:6381", o.Addr)
	require.Equal(t, "secret", o.Password)
	require.Equal(t, 3, o.DB)
	require.True(t, o.ContextTimeoutEnabled)

	_, err = RedisOptions("redis://host/notadb")
	require.ErrorContains(t, err, "redis: ")
}

func TestDeleteKeys(t *testing.T) {
	ctx := context.Background()
	c := redistest.Client(t, redistest.Mini(t))
	for i := range 1234 {
		require.NoError(t, c.Set(ctx, fmt.Sprintf("run:1:k%d", i), "v", 0).Err())
	}
	require.NoError(t, c.Set(ctx, "run:2:k", "v", 0).Err())
	require.NoError(t, DeleteKeys(ctx, c, "run:1:*"))
	keys, err := c.Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Equal(t, []string{"run:2:k"}, keys)
	require.NoError(t, DeleteKeys(ctx, c, "run:1:*"), "nothing left to delete")

	c = redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer c.Close()
	require.Error(t, DeleteKeys(ctx, c, "run:1:*"))
}
