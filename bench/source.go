package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/harness"
)

// profile is the value every scenario caches: about 100 bytes of JSON.
type profile struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Email     string `json:"email"`
	Followers int64  `json:"followers"`
	Verified  bool   `json:"verified"`
}

// profileOf returns the profile the database holds for key.
func profileOf(key string) profile {
	return profile{ID: key, Name: "Celeb", Email: "celeb@example.com", Followers: 12_000_000, Verified: true}
}

// hotKey is the key of the stampede and hotkey scenarios.
const hotKey = "user:42"

// A loadFunc reads the profile of key from the source. Every contender's loader has this shape.
type loadFunc = func(ctx context.Context, key string) (profile, error)

// A source is the database behind the caches.
type source interface {
	// queries returns a loader whose queries are counted apart from every other loader's.
	queries(tag string) *queries
	// count returns how many queries of q the database ran: those the Go counter saw for the
	// sleep, those PostgreSQL logged for PostgreSQL.
	count(ctx context.Context, q *queries) (int, error)
	describe() string
	close()
}

// queries is a loader of a source and the log of the queries it sent. It is safe for
// concurrent use.
type queries struct {
	tag  string
	load loadFunc // set by the source

	n      atomic.Int64
	mu     sync.Mutex
	starts []time.Time // guarded by mu: when each query began
}

// started records a query that begins now.
func (q *queries) started() {
	now := time.Now()
	q.mu.Lock()
	q.starts = append(q.starts, now)
	q.mu.Unlock()
	q.n.Add(1)
}

// between returns the start times of the queries that began in [from, to), sorted.
func (q *queries) between(from, to time.Time) []time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []time.Time
	for _, t := range q.starts {
		if !t.Before(from) && t.Before(to) {
			out = append(out, t)
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// sleepSource is a database whose query is a Go sleep: no connection pool, no queue, so that
// the count of queries is all it shows.
type sleepSource struct {
	latency time.Duration
}

func newSleepSource(latency time.Duration) *sleepSource { return &sleepSource{latency: latency} }

func (s *sleepSource) queries(tag string) *queries {
	q := &queries{tag: tag}
	q.load = func(ctx context.Context, key string) (profile, error) {
		q.started()
		t := time.NewTimer(s.latency)
		defer t.Stop()
		select {
		case <-t.C:
			return profileOf(key), nil
		case <-ctx.Done():
			return profile{}, ctx.Err()
		}
	}
	return q
}

func (s *sleepSource) count(_ context.Context, q *queries) (int, error) { return int(q.n.Load()), nil }

func (s *sleepSource) describe() string {
	return fmt.Sprintf("a Go sleep of %v behind a counter (no connection pool)", s.latency)
}

func (s *sleepSource) close() {}

// pgSource is PostgreSQL: the query costs pg_sleep and inserts a row into bench_queries, so
// that the database counts the queries it ran.
type pgSource struct {
	pool    *pgxpool.Pool
	latency time.Duration
	run     string
	host    string
}

// openPostgres connects with a pool of size connections, all opened before it returns, and
// creates the tables bench_profiles and bench_queries unless they exist.
func openPostgres(ctx context.Context, url string, size int, latency time.Duration, run string) (*pgSource, error) {
	pool, err := harness.OpenPool(ctx, url, size, setupTables)
	if err != nil {
		return nil, err
	}
	return &pgSource{pool: pool, latency: latency, run: run, host: harness.Host(pool)}, nil
}

// setupTables creates and seeds the tables, taking turns with concurrent runs.
func setupTables(ctx context.Context, pool *pgxpool.Pool) error {
	p := profileOf(hotKey)
	err := harness.Locked(ctx, pool, "bench_tables", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_profiles (
			id        text PRIMARY KEY,
			name      text NOT NULL,
			email     text NOT NULL,
			followers bigint NOT NULL,
			verified  boolean NOT NULL)`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_queries (
			tag text NOT NULL,
			key text NOT NULL,
			at  timestamptz NOT NULL DEFAULT clock_timestamp())`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO bench_profiles VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
			p.ID, p.Name, p.Email, p.Followers, p.Verified)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: creating the bench_ tables: %w", err)
	}
	return nil
}

func (s *pgSource) queries(tag string) *queries {
	q := &queries{tag: s.run + ":" + tag}
	q.load = func(ctx context.Context, key string) (profile, error) {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return profile{}, fmt.Errorf("postgres: waiting for a connection: %w", err)
		}
		defer c.Release()
		q.started()
		// A data-modifying WITH runs to completion whether or not the query reads it: each
		// query logs itself. pg_sleep stands on the left of the join, so that it runs whether
		// or not the row exists.
		var name, email *string
		var followers *int64
		var verified *bool
		err = c.QueryRow(ctx, `WITH logged AS (INSERT INTO bench_queries (tag, key) VALUES ($1, $2))
			SELECT p.name, p.email, p.followers, p.verified
			FROM pg_sleep($3::float8) AS cost LEFT JOIN bench_profiles AS p ON p.id = $2`,
			q.tag, key, s.latency.Seconds()).Scan(&name, &email, &followers, &verified)
		switch {
		case err != nil:
			return profile{}, fmt.Errorf("postgres: query: %w", err)
		case name == nil:
			return profile{}, fmt.Errorf("postgres: profile %q: %w", key, stampede.ErrNotFound)
		}
		return profile{ID: key, Name: *name, Email: *email, Followers: *followers, Verified: *verified}, nil
	}
	return q
}

func (s *pgSource) count(ctx context.Context, q *queries) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM bench_queries WHERE tag = $1`, q.tag).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: counting queries: %w", err)
	}
	return n, nil
}

func (s *pgSource) describe() string {
	return fmt.Sprintf("PostgreSQL %s: pg_sleep(%v) per query, counted in bench_queries (pgxpool of %d connections for the fleet)",
		s.host, s.latency, s.pool.Config().MaxConns)
}

// close deletes the run's rows of bench_queries; the tables stay for the next run.
func (s *pgSource) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = s.pool.Exec(ctx, `DELETE FROM bench_queries WHERE starts_with(tag, $1)`, s.run+":")
	s.pool.Close()
}
