package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// OpenPool connects to the PostgreSQL at url with a pool of size connections, runs setup on
// it, and opens every connection before it returns, as a running service has them open, so
// that no query pays for a connection's setup. On failure it closes the pool; its own errors
// start with "postgres: ", setup's are returned as they are.
func OpenPool(ctx context.Context, url string, size int, setup func(context.Context, *pgxpool.Pool) error) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cfg.MaxConns = int32(size)
	cfg.MinConns = int32(size)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := setup(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	if err := openAll(ctx, pool, size); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// openAll acquires n connections of pool at once, and releases them.
func openAll(ctx context.Context, pool *pgxpool.Pool, n int) error {
	conns := make([]*pgxpool.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { conns[i], errs[i] = pool.Acquire(ctx) })
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			c.Release()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("postgres: opening %d connections: %w", n, err)
	}
	return nil
}

// Locked runs fn in a transaction of pool that holds the advisory lock of key, so that
// concurrent runs take turns: CREATE TABLE IF NOT EXISTS may fail when two sessions run it at
// once.
func Locked(ctx context.Context, pool *pgxpool.Pool, key string, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, key); err != nil {
			return err
		}
		return fn(tx)
	})
}

// Host returns the server and database pool connects to: host:port/database.
func Host(pool *pgxpool.Pool) string {
	c := pool.Config().ConnConfig
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}
