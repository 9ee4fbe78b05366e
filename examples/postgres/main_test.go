package main

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/harness/harnesstest"
)

// TestLoadUser runs the example's lookup through Get on the Redis in STAMPEDE_REDIS_ADDR and
// the PostgreSQL in STAMPEDE_POSTGRES_URL.
func TestLoadUser(t *testing.T) {
	redisAddr := integrationEnv(t, "STAMPEDE_REDIS_ADDR")
	postgresURL := integrationEnv(t, "STAMPEDE_POSTGRES_URL")
	ctx := context.Background()

	db, err := pgxpool.New(ctx, postgresURL)
	require.NoError(t, err)
	t.Cleanup(db.Close)
	require.NoError(t, createTable(ctx, db))

	rdb := redis.NewClient(&redis.Options{Addr: redisAddr, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	// A namespace of its own, so that the test finds nothing another run cached.
	ns := "example-users-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	users, err := stampede.New[User](rdb, stampede.WithNamespace(ns), stampede.WithTTL(time.Minute))
	require.NoError(t, err)
	t.Cleanup(func() { _ = users.Close() })

	for range 3 {
		u, err := users.Get(ctx, "42", loadUser(db))
		require.NoError(t, err)
		require.Equal(t, User{ID: 42, Name: "Grace Hopper"}, u)
	}
	_, err = users.Get(ctx, "7", loadUser(db))
	require.ErrorIs(t, err, stampede.ErrNotFound)
	_, err = users.Get(ctx, "7", loadUser(db))
	require.ErrorIs(t, err, stampede.ErrNotFound, "served from the negative entry")

	s := users.Stats()
	require.Equal(t, uint64(2), s.Loads, "one query for user 42, one for the missing user 7")
	require.Equal(t, uint64(3), s.L1Hits+s.L2Hits, "the other Gets are hits")

	// GetMany: user 42 is cached, 1 is loaded by the batch query, 404 does not exist.
	var queries int
	counted := func(ctx context.Context, ids []string) (map[string]User, error) {
		queries++
		return loadUsers(db)(ctx, ids)
	}
	for range 2 {
		got, err := users.GetMany(ctx, []string{"1", "42", "404"}, counted)
		require.NoError(t, err)
		require.Equal(t, map[string]User{"1": {ID: 1, Name: "Ada Lovelace"}, "42": {ID: 42, Name: "Grace Hopper"}}, got)
	}
	require.Equal(t, 1, queries, "one query for 1 and 404; then all cached")
}

// integrationEnv returns the variable name, or skips the test without it; with
// STAMPEDE_REQUIRE_INTEGRATION=1 (as CI sets) a missing variable fails it.
func integrationEnv(t *testing.T, name string) string {
	t.Helper()
	return harnesstest.Env(t, name, "the example's test needs a real Redis and PostgreSQL")
}
