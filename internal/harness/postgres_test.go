package harness

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/redistest"
)

func TestOpenPoolRefusesABadURL(t *testing.T) {
	_, err := OpenPool(context.Background(), "postgres://x:notaport/db", 1, nil)
	require.ErrorContains(t, err, "postgres: ")
}

// TestOpenPool opens a pool of the PostgreSQL in STAMPEDE_POSTGRES_URL: setup runs once, under
// the advisory lock, and every connection is open when OpenPool returns.
func TestOpenPool(t *testing.T) {
	url := redistest.PostgresURL(t)
	ctx := context.Background()
	var setups int
	pool, err := OpenPool(ctx, url, 3, func(ctx context.Context, p *pgxpool.Pool) error {
		setups++
		return Locked(ctx, p, "harness_test", func(tx pgx.Tx) error {
			var held bool
			err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks
				WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted)`).Scan(&held)
			require.True(t, held, "the advisory lock is held")
			return err
		})
	})
	require.NoError(t, err)
	defer pool.Close()
	require.Equal(t, 1, setups)
	require.EqualValues(t, 3, pool.Stat().TotalConns())
	require.True(t, strings.Contains(Host(pool), ":"), Host(pool))
	require.Equal(t, pool.Config().ConnConfig.Database, Host(pool)[strings.LastIndex(Host(pool), "/")+1:])

	failed := errors.New("setup failed")
	_, err = OpenPool(ctx, url, 1, func(context.Context, *pgxpool.Pool) error { return failed })
	require.ErrorIs(t, err, failed)
}
