package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/harness"
)

// pgDB is a real PostgreSQL table of profiles, reached through a pgx pool of fixed size. The
// profile query costs the query latency through pg_sleep, so that the database, not the
// program, decides how long it runs, queues and times out.
type pgDB struct {
	pool    *pgxpool.Pool
	table   string // the table's name, as given
	ident   string // the table's name, quoted for SQL
	latency time.Duration
	host    string
}

// tableName is what the program accepts as the name of its table: its own prefix, so that it
// can never touch another program's table.
var tableName = regexp.MustCompile(`^incident_[a-z0-9_]{1,50}$`)

// openPostgres connects to url with a pool of pool connections, all opened before it returns,
// and creates and seeds table with keys profiles unless they exist.
func openPostgres(ctx context.Context, url, table string, pool int, latency time.Duration, keys int) (*pgDB, error) {
	if !tableName.MatchString(table) {
		return nil, fmt.Errorf("postgres: table %q: the name must match %s", table, tableName)
	}
	d := &pgDB{table: table, ident: pgx.Identifier{table}.Sanitize(), latency: latency}
	_, err := harness.OpenPool(ctx, url, pool, func(ctx context.Context, p *pgxpool.Pool) error {
		d.pool = p
		return d.setup(ctx, keys)
	})
	if err != nil {
		return nil, err
	}
	d.host = harness.Host(d.pool)
	return d, nil
}

// setup creates and seeds the table, taking turns with concurrent runs.
func (d *pgDB) setup(ctx context.Context, keys int) error {
	err := harness.Locked(ctx, d.pool, d.table, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+d.ident+` (
			id      text PRIMARY KEY,
			name    text NOT NULL,
			version bigint NOT NULL DEFAULT 1)`)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+d.ident+` (id, name)
			SELECT $1::text, 'Celeb'
			UNION ALL
			SELECT 'user:' || i, 'User ' || i FROM generate_series(1, $2::int - 1) AS i
			ON CONFLICT (id) DO NOTHING`, hotKey, keys)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: creating table %s: %w", d.table, err)
	}
	return nil
}

func (d *pgDB) lookup(ctx context.Context, id string, started func()) (profile, error) {
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return profile{}, fmt.Errorf("postgres: waiting for a connection: %w", err)
	}
	defer c.Release()
	started()
	// pg_sleep stands on the left of the join, so that it runs whether or not the row exists.
	var name *string
	var version *int64
	err = c.QueryRow(ctx, `SELECT p.name, p.version
		FROM pg_sleep($2::float8) AS cost LEFT JOIN `+d.ident+` AS p ON p.id = $1`,
		id, d.latency.Seconds()).Scan(&name, &version)
	switch {
	case err != nil:
		return profile{}, fmt.Errorf("postgres: query: %w", err)
	case name == nil:
		return profile{}, fmt.Errorf("postgres: profile %q: %w", id, stampede.ErrNotFound)
	}
	return profile{ID: id, Name: *name, Version: *version}, nil
}

func (d *pgDB) lookupMany(ctx context.Context, ids []string, started func()) (map[string]profile, error) {
	c, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("postgres: waiting for a connection: %w", err)
	}
	defer c.Release()
	started()
	// As in lookup, pg_sleep on the left of the join runs once, whether or not rows match; when
	// none does, the one row is of NULLs.
	rows, err := c.Query(ctx, `SELECT p.id, p.name, p.version
		FROM pg_sleep($2::float8) AS cost LEFT JOIN `+d.ident+` AS p ON p.id = ANY($1)`,
		ids, d.latency.Seconds())
	if err != nil {
		return nil, fmt.Errorf("postgres: query: %w", err)
	}
	found := make(map[string]profile, len(ids))
	var id, name *string
	var version *int64
	_, err = pgx.ForEachRow(rows, []any{&id, &name, &version}, func() error {
		if id != nil {
			found[*id] = profile{ID: *id, Name: *name, Version: *version}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: query: %w", err)
	}
	return found, nil
}

func (d *pgDB) update(ctx context.Context, id string) (int64, error) {
	var v int64
	err := d.pool.QueryRow(ctx, `UPDATE `+d.ident+` SET version = version + 1 WHERE id = $1 RETURNING version`, id).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("postgres: profile %q: %w", id, stampede.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: update: %w", err)
	}
	return v, nil
}

func (d *pgDB) rows(ctx context.Context, ids []string) (map[string]profile, error) {
	rows, err := d.pool.Query(ctx, `SELECT id, name, version FROM `+d.ident+` WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	out := make(map[string]profile, len(ids))
	var p profile
	_, err = pgx.ForEachRow(rows, []any{&p.ID, &p.Name, &p.Version}, func() error {
		out[p.ID] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return out, nil
}

func (d *pgDB) String() string {
	return fmt.Sprintf("PostgreSQL %s, table %s (pgxpool of %d connections, pg_sleep %v per query)",
		d.host, d.table, d.pool.Config().MaxConns, d.latency)
}

func (d *pgDB) close() { d.pool.Close() }
