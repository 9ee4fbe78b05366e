package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede/internal/harness"
)

// env is what the scenarios of a run share: the Redis, the database, and the run's id, which
// prefixes every Redis key the run writes so that it can share a Redis and delete its keys.
type env struct {
	run          string                // random
	options      func() *redis.Options // of a new client
	admin        *redis.Client         // for setup and cleanup
	redisVersion string
	src          source
}

// openEnv checks the Redis of cfg and opens its database.
func openEnv(ctx context.Context, cfg *config) (*env, error) {
	e := &env{run: harness.RunID()}
	var err error
	// Every contender gets the same client options.
	if e.options, err = harness.RedisOptions(cfg.Redis); err != nil {
		return nil, err
	}
	e.admin = redis.NewClient(e.options())
	info, err := e.admin.InfoMap(ctx, "server").Result()
	if err != nil {
		_ = e.admin.Close()
		return nil, fmt.Errorf("redis %s: %w", cfg.Redis, err)
	}
	e.redisVersion = info["Server"]["redis_version"]
	if cfg.Postgres == "" {
		e.src = newSleepSource(cfg.Query)
		return e, nil
	}
	e.src, err = openPostgres(ctx, cfg.Postgres, cfg.PGPool, cfg.Query, e.run)
	if err != nil {
		_ = e.admin.Close()
		return nil, err
	}
	return e, nil
}

// client returns a new client of the run's Redis, as a new instance of a service opens.
func (e *env) client() *redis.Client { return redis.NewClient(e.options()) }

// prefix returns the prefix of the Redis keys of one scenario (or part of one) of the run.
func (e *env) prefix(parts ...string) string {
	return "bench:" + e.run + ":" + strings.Join(parts, ":")
}

// clean deletes the Redis keys that start with prefix.
func (e *env) clean(ctx context.Context, prefix string) error {
	return harness.DeleteKeys(ctx, e.admin, prefix+"*")
}

func (e *env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = e.clean(ctx, e.prefix())
	e.src.close()
	_ = e.admin.Close()
}

// redisCPU returns the CPU time the Redis server has used, user and system, or 0 if INFO fails.
func (e *env) redisCPU(ctx context.Context) time.Duration {
	info, err := e.admin.InfoMap(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
		v, _ := strconv.ParseFloat(info["CPU"][k], 64)
		total += v
	}
	return time.Duration(total * float64(time.Second))
}

// writeMachine prints what the figures were measured on.
func (e *env) writeMachine(w io.Writer) {
	model, cores := cpuInfo()
	fmt.Fprintf(w, "## Machine\n\n")
	fmt.Fprintf(w, "- Date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "- CPU: %s, %d logical cores (/proc/cpuinfo); GOMAXPROCS %d\n", model, cores, runtime.GOMAXPROCS(0))
	fmt.Fprintf(w, "- Go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "- Redis: %s (%s)\n", e.redisVersion, e.options().Addr)
	fmt.Fprintf(w, "- Loader: %s\n\n", e.src.describe())
}

// cpuInfo returns the model name and the number of logical processors in /proc/cpuinfo.
func cpuInfo() (model string, n int) {
	model = "unknown CPU"
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return model, runtime.NumCPU()
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			n++
		case "model name":
			model = strings.TrimSpace(v)
		}
	}
	return model, n
}
