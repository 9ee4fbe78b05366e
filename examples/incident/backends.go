package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede/internal/harness"
)

// backends are the Redis and the database of a run, shared by the replays of its strategies,
// each of which works in namespaces of its own.
type backends struct {
	redis redisOptions
	src   source
	run   string // random; names this run's namespaces

	mini *miniredis.Miniredis // the embedded Redis, or nil
	stop func()               // stops the embedded Redis's clock
}

// redisOptions returns the options of a new client of the run's Redis.
type redisOptions func() *redis.Options

// openBackends starts what cfg asks for: the Redis at cfg.Redis or an embedded one, and the
// PostgreSQL at cfg.Postgres or the embedded database model.
func openBackends(ctx context.Context, cfg *config) (*backends, error) {
	b := &backends{run: harness.RunID(), stop: func() {}}
	if err := b.openRedis(ctx, cfg.Redis); err != nil {
		return nil, err
	}
	if cfg.Postgres == "" {
		b.src = newMemDB(cfg.Pool, cfg.Latency, cfg.Keys)
		return b, nil
	}
	src, err := openPostgres(ctx, cfg.Postgres, cfg.Table, cfg.Pool, cfg.Latency, cfg.Keys)
	if err != nil {
		b.close()
		return nil, err
	}
	b.src = src
	return b, nil
}

// openRedis checks the Redis at addr (host:port or a redis:// URL), or starts an embedded one
// on a TCP port of the loopback when addr is empty.
func (b *backends) openRedis(ctx context.Context, addr string) error {
	if addr == "" {
		m, err := miniredis.Run()
		if err != nil {
			return fmt.Errorf("embedded Redis: %w", err)
		}
		b.mini = m
		b.stop = advanceClock(m)
		addr = m.Addr()
	}
	opts, err := harness.RedisOptions(addr)
	if err != nil {
		return err
	}
	b.redis = opts
	c := redis.NewClient(b.redis())
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		b.close()
		return fmt.Errorf("redis %s: %w", addr, err)
	}
	return nil
}

// advanceClock makes the embedded Redis expire keys as time passes, every 50 ms: miniredis
// expires keys only when told to. (Its ClockTTL option does it on every command, at a cost
// that grows with the number of keys.)
func advanceClock(m *miniredis.Miniredis) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// client returns a new client of the run's Redis, as a new instance of the service opens.
func (b *backends) client() *redis.Client { return redis.NewClient(b.redis()) }

// namespace returns the Redis namespace of a strategy in a round of this run.
func (b *backends) namespace(slug string, round int) string {
	return "incident:" + b.run + ":" + strconv.Itoa(round+1) + ":" + slug
}

// clean deletes the keys of namespace ns, so that a run leaves nothing in a shared Redis.
func (b *backends) clean(ctx context.Context, ns string) error {
	c := b.client()
	defer c.Close()
	return harness.DeleteKeys(ctx, c, ns+":*")
}

// describe says which backends the run uses, for the report.
func (b *backends) describe() backendInfo {
	info := backendInfo{Redis: "Redis " + b.redis().Addr, Database: b.src.String()}
	if b.mini != nil {
		info.Redis = "embedded Redis (miniredis on " + b.mini.Addr() + ")"
		info.EmbeddedRedis = true
	}
	_, info.EmbeddedDatabase = b.src.(*memDB)
	return info
}

// backendInfo is the report's account of the backends.
type backendInfo struct {
	Redis            string `json:"redis"`
	Database         string `json:"database"`
	EmbeddedRedis    bool   `json:"embedded_redis"`
	EmbeddedDatabase bool   `json:"embedded_database"`
}

// short names the backends in a few words.
func (i backendInfo) short() string {
	redis, _, _ := strings.Cut(i.Redis, " (")
	db, _, _ := strings.Cut(i.Database, ",")
	if i.EmbeddedDatabase {
		db = "the embedded database model"
	}
	return redis + " and " + db
}

func (b *backends) close() {
	if b.src != nil {
		b.src.close()
	}
	b.stop()
	if b.mini != nil {
		b.mini.Close()
	}
}
