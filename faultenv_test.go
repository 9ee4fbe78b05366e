package stampede_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// faultTimeout is the Redis timeout of the fault tests: the dial, read and write timeouts of
// their clients and the caches' WithRedisTimeout.
const faultTimeout = 250 * time.Millisecond

// faultClient returns a client of the Redis at addr with the fault tests' timeouts, named name
// in CLIENT LIST when name is not empty.
func faultClient(addr, name string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  addr,
		ClientName:            name,
		ContextTimeoutEnabled: true,
		DialTimeout:           faultTimeout,
		ReadTimeout:           faultTimeout,
		WriteTimeout:          faultTimeout,
	})
}

// faultInstances are the caches of a fleet and their clients, which the fault tests close
// themselves before they look for leaked goroutines.
type faultInstances struct {
	caches  []*stampede.Cache[string]
	clients []*redis.Client
}

// faultFleet starts n caches in namespace ns, each with a client of its own to addr (Redis, or
// a proxy in front of it).
func faultFleet(t *testing.T, addr, ns string, n int, opts ...stampede.Option) *faultInstances {
	t.Helper()
	opts = append([]stampede.Option{stampede.WithNamespace(ns), stampede.WithRedisTimeout(faultTimeout)}, opts...)
	f := &faultInstances{}
	t.Cleanup(f.close)
	for range n {
		client := faultClient(addr, "")
		f.clients = append(f.clients, client)
		c, err := stampede.New[string](client, opts...)
		require.NoError(t, err)
		f.caches = append(f.caches, c)
	}
	return f
}

// close closes the caches, then their clients. It is idempotent.
func (f *faultInstances) close() {
	for _, c := range f.caches {
		_ = c.Close()
	}
	for _, c := range f.clients {
		_ = c.Close()
	}
}

// faultDB is the source of the fault tests: it counts the loads of each key, and how many run
// at once for a key in one instance, which must never be more than one.
type faultDB struct {
	latency time.Duration

	mu       sync.Mutex
	inFlight map[[2]string]int // by instance and key
	maxOnce  int               // the most loads of one key that ran at once in one instance
	log      []faultLoad       // every load, in the order they began
}

type faultLoad struct {
	key string
	at  time.Time
}

func newFaultDB(latency time.Duration) *faultDB {
	return &faultDB{latency: latency, inFlight: map[[2]string]int{}}
}

// loader returns the loader of instance i.
func (d *faultDB) loader(i int) stampede.Loader[string] {
	inst := strconv.Itoa(i)
	return func(ctx context.Context, key string) (string, error) {
		id := [2]string{inst, key}
		d.mu.Lock()
		d.inFlight[id]++
		d.maxOnce = max(d.maxOnce, d.inFlight[id])
		d.log = append(d.log, faultLoad{key, time.Now()})
		d.mu.Unlock()
		defer func() {
			d.mu.Lock()
			d.inFlight[id]--
			d.mu.Unlock()
		}()
		select {
		case <-time.After(d.latency):
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return "value of " + key, nil
	}
}

// loadsSince returns the loads of each key that began at or after from.
func (d *faultDB) loadsSince(from time.Time) map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := map[string]int{}
	for _, e := range d.log {
		if !e.at.Before(from) {
			n[e.key]++
		}
	}
	return n
}

// readSample is one Get of a load run: when it began, how long it took, and its error.
type readSample struct {
	at   time.Time
	took time.Duration
	err  error
}

// readSummary summarizes the samples that began in [from, to).
type readSummary struct {
	n             int
	errors        int
	p50, p99, max time.Duration
	firstErr      error
}

func (p readSummary) String() string {
	return fmt.Sprintf("%d reads, %d errors, latency %v (p50) %v (p99) %v (max)", p.n, p.errors, p.p50, p.p99, p.max)
}

func summarizeReads(samples []readSample, from, to time.Time) readSummary {
	var p readSummary
	var d []time.Duration
	for _, s := range samples {
		if s.at.Before(from) || !s.at.Before(to) {
			continue
		}
		d = append(d, s.took)
		if s.err != nil {
			p.errors++
			if p.firstErr == nil {
				p.firstErr = s.err
			}
		}
	}
	if len(d) == 0 {
		return p
	}
	slices.Sort(d)
	p.n, p.p50, p.p99, p.max = len(d), d[len(d)/2], d[len(d)*99/100], d[len(d)-1]
	return p
}

// loadRun reads keys from every instance on workers goroutines each, one Get every pace per
// goroutine, until stop is called, which returns every read.
func loadRun(f *faultInstances, db *faultDB, keys []string, workers int, pace time.Duration) (stop func() []readSample) {
	var (
		mu      sync.Mutex
		samples []readSample
		wg      sync.WaitGroup
		done    = make(chan struct{})
	)
	for i, c := range f.caches {
		load := db.loader(i)
		for w := range workers {
			wg.Go(func() {
				tick := time.NewTicker(pace)
				defer tick.Stop()
				var mine []readSample
				for n := w; ; n++ {
					select {
					case <-done:
						mu.Lock()
						samples = append(samples, mine...)
						mu.Unlock()
						return
					case <-tick.C:
					}
					key := keys[(n*7+i)%len(keys)]
					start := time.Now()
					v, err := c.Get(context.Background(), key, load)
					if err == nil && v != "value of "+key {
						err = fmt.Errorf("got %q for %q", v, key)
					}
					mine = append(mine, readSample{start, time.Since(start), err})
				}
			})
		}
	}
	return func() []readSample {
		close(done)
		wg.Wait()
		return samples
	}
}

// freePort returns a loopback port nobody listens on, for a server the test starts.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// redisServer is a redis-server the test runs as a child process, empty each time it starts.
type redisServer struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

// startRedis starts redis-server on a free port, without persistence, and stops it when the
// test ends.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	redistest.Addr(t) // an integration test: skipped or required with the others
	if _, err := exec.LookPath("redis-server"); err != nil {
		if redistest.Required() {
			t.Fatalf("redis-server is not on PATH: %v", err)
		}
		t.Skipf("redis-server is not on PATH: %v", err)
	}
	s := &redisServer{t: t, port: freePort(t), dir: t.TempDir()}
	t.Cleanup(s.kill)
	s.start()
	return s
}

func (s *redisServer) addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

func (s *redisServer) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", s.dir, "--loglevel", "warning")
	require.NoError(s.t, s.cmd.Start())
	c := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer c.Close()
	require.Eventually(s.t, func() bool { return c.Ping(context.Background()).Err() == nil },
		10*time.Second, 5*time.Millisecond, "redis-server on port %d did not start", s.port)
}

// kill stops the server at once (SIGKILL): what it held is lost.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// leaseLeft returns how long the lease on the lock key has left, or a negative duration when
// there is none in force.
func leaseLeft(ctx context.Context, admin *redis.Client, lock string) (time.Duration, error) {
	v, err := admin.Get(ctx, lock).Result()
	if errors.Is(err, redis.Nil) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	if _, exp := scripts.ParseLease(v); !exp.IsZero() {
		return time.Until(exp), nil
	}
	return admin.PTTL(ctx, lock).Result()
}
