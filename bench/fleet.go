package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede"
)

// The fleet scenario: what a write costs Redis as the fleet grows. N instances in one process,
// each with its own client and an L1 that holds every key of the working set, and writes (Set)
// at a fixed rate on random keys, spread over the instances. For each N and eviction window
// (WithEvictionWindow: 0 publishes one message per write, as before #17), it reports Redis's CPU
// per write (INFO cpu) and output bytes per write (INFO stats), against a raw go-redis SET at the
// same rate in the same run; and the L1 staleness after a write: how long after Set returned
// another instance's Get still returned the replaced value (probes at a low rate, on up to 8
// instances each).

// fleetTopology is one Redis the scenario runs on.
type fleetTopology struct {
	name    string
	client  func() redis.UniversalClient // a new instance's client
	masters func() []*redis.Client       // whose INFO is summed
	close   func()
}

func fleetTopologies(cfg *config, e *env) []fleetTopology {
	single := fleetTopology{
		name:    "single node",
		client:  func() redis.UniversalClient { return e.client() },
		masters: func() []*redis.Client { return []*redis.Client{e.admin} },
		close:   func() {},
	}
	out := []fleetTopology{single}
	if cfg.FleetCluster == "" {
		return out
	}
	addrs := strings.Split(cfg.FleetCluster, ",")
	opts := func() *redis.ClusterOptions {
		o := e.options()
		return &redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true, PoolSize: o.PoolSize}
	}
	var admins []*redis.Client
	for _, a := range addrs {
		admins = append(admins, redis.NewClient(&redis.Options{Addr: a}))
	}
	return append(out, fleetTopology{
		name:   "cluster",
		client: func() redis.UniversalClient { return redis.NewClusterClient(opts()) },
		masters: func() []*redis.Client {
			var ms []*redis.Client
			for _, a := range admins {
				if strings.Contains(a.Info(context.Background(), "replication").Val(), "role:master") {
					ms = append(ms, a)
				}
			}
			return ms
		},
		close: func() {
			for _, a := range admins {
				_ = a.Close()
			}
		},
	})
}

// redisStats is what the fleet scenario reads of Redis's masters, summed.
type redisStats struct {
	cpu    time.Duration
	output int64
	bus    int64 // pub/sub messages sent over the cluster bus (PUBLISH and SPUBLISH)
}

func readStats(ctx context.Context, ms []*redis.Client) redisStats {
	var s redisStats
	for _, m := range ms {
		info, err := m.InfoMap(ctx, "cpu", "stats").Result()
		if err != nil {
			continue
		}
		for _, k := range []string{"used_cpu_sys", "used_cpu_user"} {
			v, _ := strconv.ParseFloat(info["CPU"][k], 64)
			s.cpu += time.Duration(v * float64(time.Second))
		}
		o, _ := strconv.ParseInt(info["Stats"]["total_net_output_bytes"], 10, 64)
		r, _ := strconv.ParseInt(info["Stats"]["total_net_repl_output_bytes"], 10, 64)
		s.output += o - r
		if ci, err := m.ClusterInfo(ctx).Result(); err == nil {
			for line := range strings.SplitSeq(ci, "\n") {
				k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
				if k == "cluster_stats_messages_publish_sent" || k == "cluster_stats_messages_publishshard_sent" {
					n, _ := strconv.ParseInt(v, 10, 64)
					s.bus += n
				}
			}
		}
	}
	return s
}

func (a redisStats) since(b redisStats) redisStats {
	return redisStats{cpu: a.cpu - b.cpu, output: a.output - b.output, bus: a.bus - b.bus}
}

// atRate calls write rate times a second for d, spread evenly, each on a goroutine of its own,
// and returns how many it called once they all returned.
func atRate(ctx context.Context, rate float64, d time.Duration, write func(i int)) int {
	const tick = time.Millisecond
	var wg sync.WaitGroup
	start := time.Now()
	n := 0
	t := time.NewTicker(tick)
	defer t.Stop()
	for now := start; now.Sub(start) < d && ctx.Err() == nil; now = <-t.C {
		due := int(rate * now.Sub(start).Seconds())
		for ; n <= due; n++ {
			i := n // n is the loop's, not the iteration's
			wg.Go(func() { write(i) })
		}
	}
	wg.Wait()
	return n
}

func runFleet(ctx context.Context, cfg *config, e *env, out io.Writer, logf func(string, ...any)) error {
	t := newTable("Redis", "window", "instances", "Redis CPU per write", "vs 1 instance", "Redis output per write",
		"bus messages per write", "stale p50", "stale p99", "probes")
	for _, topo := range fleetTopologies(cfg, e) {
		defer topo.close()
		// The baseline: raw SETs at the same rate, on random keys of the working set.
		raw := topo.client()
		prefix := e.prefix("fleet", "raw")
		before := readStats(ctx, topo.masters())
		n := atRate(ctx, cfg.FleetRate, cfg.FleetMeasure, func(int) {
			raw.Set(ctx, fmt.Sprintf("%s:{%d}", prefix, rand.IntN(cfg.FleetKeys)), "value", time.Minute)
		})
		d := readStats(ctx, topo.masters()).since(before)
		_ = raw.Close()
		t.add(topo.name, "raw go-redis SET", "", perWrite(d.cpu, n), "", bytesPerWrite(d.output, n), busPerWrite(d.bus, n), "", "", "")
		logf("fleet: %s raw SET: %v/write", topo.name, perWrite(d.cpu, n))
		for _, window := range cfg.FleetWindows {
			var one time.Duration
			for _, size := range cfg.FleetSizes {
				r, err := fleetRun(ctx, cfg, e, topo, size, window)
				if err != nil {
					return err
				}
				cpu := r.stats.cpu / time.Duration(max(r.writes, 1))
				if size == cfg.FleetSizes[0] {
					one = cpu
				}
				ratio := ""
				if one > 0 {
					ratio = fmt.Sprintf("%.2f×", float64(cpu)/float64(one))
				}
				t.add(topo.name, window.String(), size, perWrite(r.stats.cpu, r.writes), ratio,
					bytesPerWrite(r.stats.output, r.writes), busPerWrite(r.stats.bus, r.writes),
					ms(r.stale.percentile(0.5)), ms(r.stale.percentile(0.99)), len(r.stale))
				logf("fleet: %s window %v, %d instances: %v/write, %s/write, stale p99 %v",
					topo.name, window, size, perWrite(r.stats.cpu, r.writes), bytesPerWrite(r.stats.output, r.writes), r.stale.percentile(0.99))
			}
		}
	}
	fmt.Fprintf(out, "## h. Fleet: the cost of a write as instances are added\n\n")
	fmt.Fprintf(out, "%.0f writes/s (Set) on random keys of %d, spread over the instances, for %v; every instance's L1 holds every key at the start.\n\n",
		cfg.FleetRate, cfg.FleetKeys, cfg.FleetMeasure)
	t.write(out)
	return nil
}

func perWrite(cpu time.Duration, n int) string {
	return fmt.Sprintf("%.1f µs", float64(cpu.Microseconds())/float64(max(n, 1)))
}

func bytesPerWrite(b int64, n int) string {
	v := float64(b) / float64(max(n, 1))
	if v >= 1000 {
		return fmt.Sprintf("%.2f KB", v/1000)
	}
	return fmt.Sprintf("%.0f B", v)
}

func busPerWrite(b int64, n int) string {
	return fmt.Sprintf("%.2f", float64(b)/float64(max(n, 1)))
}

type fleetResult struct {
	writes int
	stats  redisStats
	stale  latencies
}

func fleetRun(ctx context.Context, cfg *config, e *env, topo fleetTopology, size int, window time.Duration) (fleetResult, error) {
	// A short namespace, as a service's would be: the stripes' channel names go with every
	// message, to every instance.
	ns := fmt.Sprintf("fl%s:%c%d:%v", e.run[:4], topo.name[0], size, window)
	caches := make([]*stampede.Cache[string], size)
	var clients []redis.UniversalClient
	defer func() {
		for _, c := range caches {
			if c != nil {
				_ = c.Close()
			}
		}
		for _, c := range clients {
			_ = c.Close()
		}
		_ = cleanFleet(ctx, topo, ns)
	}()
	for i := range caches {
		client := topo.client()
		clients = append(clients, client)
		c, err := stampede.New[string](client, stampede.WithNamespace(ns), stampede.WithEvictionWindow(window),
			stampede.WithL1(2*cfg.FleetKeys, time.Hour), stampede.WithTTL(time.Hour), stampede.WithEarlyRefresh(-1))
		if err != nil {
			return fleetResult{}, err
		}
		caches[i] = c
	}
	key := func(i int) string { return "k" + strconv.Itoa(i) }
	load := func(context.Context, string) (string, error) { return "v0", nil }
	// Every instance holds every key.
	var wg sync.WaitGroup
	for _, c := range caches {
		wg.Go(func() {
			for i := range cfg.FleetKeys {
				_, _ = c.Get(ctx, key(i), load)
			}
		})
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond)

	var r fleetResult
	var version atomic.Int64
	before := readStats(ctx, topo.masters())
	r.writes = atRate(ctx, cfg.FleetRate, cfg.FleetMeasure, func(i int) {
		_ = caches[i%size].Set(ctx, key(rand.IntN(cfg.FleetKeys)), "v"+strconv.FormatInt(version.Add(1), 10))
	})
	r.stats = readStats(ctx, topo.masters()).since(before)

	// Staleness: a write on one instance, and up to 8 others that held the key poll it.
	if size > 1 {
		for p := range cfg.FleetProbes {
			k := key(rand.IntN(cfg.FleetKeys))
			w := caches[p%size]
			var others []*stampede.Cache[string]
			for _, j := range rand.Perm(size)[:min(size, 9)] {
				if caches[j] != w && len(others) < 8 {
					others = append(others, caches[j])
				}
			}
			for _, c := range others {
				_, _ = c.Get(ctx, k, load)
			}
			want := "probe" + strconv.Itoa(p)
			if err := w.Set(ctx, k, want); err != nil {
				continue
			}
			returned := time.Now()
			var mu sync.Mutex
			for _, c := range others {
				wg.Go(func() {
					for time.Since(returned) < 2*time.Second {
						if v, _ := c.Get(ctx, k, load); v == want {
							mu.Lock()
							r.stale = append(r.stale, time.Since(returned))
							mu.Unlock()
							return
						}
						time.Sleep(200 * time.Microsecond)
					}
				})
			}
			wg.Wait()
			time.Sleep(10 * time.Millisecond)
		}
	}
	return r, nil
}

// cleanFleet deletes the keys of a run of the fleet scenario, on every master.
func cleanFleet(ctx context.Context, topo fleetTopology, ns string) error {
	for _, m := range topo.masters() {
		iter := m.Scan(ctx, 0, ns+"*", 1000).Iterator()
		for iter.Next(ctx) {
			m.Del(ctx, iter.Val())
		}
	}
	return nil
}
