// Command postgres is the smallest real use of stampede: a PostgreSQL lookup behind Get, and a
// batch query (WHERE id = ANY($1)) behind GetMany.
//
//	go run . -redis 127.0.0.1:6379 -postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede"
)

// User is a row of the example_users table.
type User struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// loadUser returns the loader of users: one query by primary key. Get runs it on a miss, once
// per key at a time across every instance of the service, and shares its result.
func loadUser(db *pgxpool.Pool) stampede.Loader[User] {
	return func(ctx context.Context, id string) (User, error) {
		var u User
		err := db.QueryRow(ctx, `SELECT id, name FROM example_users WHERE id = $1`, id).Scan(&u.ID, &u.Name)
		if errors.Is(err, pgx.ErrNoRows) {
			return u, stampede.ErrNotFound // cached too, for a shorter while
		}
		return u, err
	}
}

// loadUsers returns the BatchLoader of users: one query for every id GetMany misses. Ids it
// leaves out of the map do not exist, and are cached as not-found.
func loadUsers(db *pgxpool.Pool) stampede.BatchLoader[User] {
	return func(ctx context.Context, ids []string) (map[string]User, error) {
		rows, err := db.Query(ctx, `SELECT id, name FROM example_users WHERE id::text = ANY($1)`, ids)
		if err != nil {
			return nil, err
		}
		found := make(map[string]User, len(ids))
		for rows.Next() {
			var u User
			if err := rows.Scan(&u.ID, &u.Name); err != nil {
				rows.Close()
				return nil, err
			}
			found[strconv.FormatInt(u.ID, 10)] = u
		}
		return found, rows.Err()
	}
}

func main() {
	redisAddr := flag.String("redis", envOr("REDIS_URL", "127.0.0.1:6379"), "Redis address")
	postgresURL := flag.String("postgres", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL URL")
	flag.Parse()
	ctx := context.Background()

	db, err := pgxpool.New(ctx, *postgresURL)
	check(err)
	defer db.Close()
	check(createTable(ctx, db))

	rdb := redis.NewClient(&redis.Options{Addr: *redisAddr, ContextTimeoutEnabled: true})
	defer rdb.Close()
	users, err := stampede.New[User](rdb, stampede.WithNamespace("example-users"), stampede.WithTTL(5*time.Minute))
	check(err)
	defer users.Close()

	for range 3 {
		start := time.Now()
		u, err := users.Get(ctx, "42", loadUser(db))
		check(err)
		fmt.Printf("%+v in %v\n", u, time.Since(start))
	}
	// Many keys at once: one MGET, and one query for the misses.
	start := time.Now()
	many, err := users.GetMany(ctx, []string{"1", "42", "404"}, loadUsers(db))
	check(err)
	fmt.Printf("%d users (404 does not exist) in %v\n", len(many), time.Since(start))
}

// createTable creates and seeds the example's table, as a migration would.
func createTable(ctx context.Context, db *pgxpool.Pool) error {
	_, err := db.Exec(ctx, `
		CREATE TABLE IF NOT EXISTS example_users (id bigint PRIMARY KEY, name text NOT NULL);
		INSERT INTO example_users VALUES (1, 'Ada Lovelace'), (42, 'Grace Hopper') ON CONFLICT (id) DO NOTHING`)
	return err
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "postgres example:", err)
		os.Exit(1)
	}
}
