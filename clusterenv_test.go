package stampede_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/redistest"
)

// clusterNodeTimeout is the cluster-node-timeout of a testCluster: a master that does not answer
// for that long is failed over.
const clusterNodeTimeout = time.Second

// testCluster is a Redis Cluster that one test owns: 3 masters with one replica each, run as
// redis-server child processes on free ports, without persistence, killed when the test ends.
// The shared cluster of STAMPEDE_REDIS_CLUSTER_ADDRS is not touched: a test may fail over,
// kill and restart the nodes of its own.
type testCluster struct {
	t     *testing.T
	dir   string
	nodes []*clusterNode
}

// clusterNode is one redis-server of a testCluster.
type clusterNode struct {
	port  int
	id    string        // its cluster node id, which survives a restart (nodes-P.conf)
	cmd   *exec.Cmd     // nil while the node is down
	admin *redis.Client // a client of this node alone, for the cluster commands of the test
}

func (n *clusterNode) addr() string   { return "127.0.0.1:" + strconv.Itoa(n.port) }
func (n *clusterNode) String() string { return n.addr() }
func (n *clusterNode) up() bool       { return n.cmd != nil }

// failoverEvent is the time line of one failover of a master to its replica.
type failoverEvent struct {
	old, new *clusterNode
	start    time.Time // when CLUSTER FAILOVER was sent, or the master killed
	promoted time.Time // when the replica first said it was a master (ROLE)
	agreed   time.Time // when every live node said the replica owns the slot, with cluster_state:ok
}

func (e failoverEvent) String() string {
	return fmt.Sprintf("%s -> %s: promoted after %v, every node agreed after %v",
		e.old, e.new, e.promoted.Sub(e.start).Round(time.Millisecond), e.agreed.Sub(e.start).Round(time.Millisecond))
}

// startCluster starts a 6-node cluster (3 masters, 1 replica each) for the test, and returns once
// it is healthy (see waitHealthy): every node says cluster_state:ok and agrees on the owner of
// every slot, and every replica's link to its master is up. It is an integration test's: skipped without
// STAMPEDE_REDIS_CLUSTER_ADDRS (the cluster tests' variable), failed under
// STAMPEDE_REQUIRE_INTEGRATION=1 when that or redis-server or redis-cli is missing.
func startCluster(t *testing.T) *testCluster {
	t.Helper()
	redistest.ClusterAddrs(t)
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if redistest.Required() {
				t.Fatalf("%s is not on PATH: %v", bin, err)
			}
			t.Skipf("%s is not on PATH: %v", bin, err)
		}
	}
	c := &testCluster{t: t, dir: t.TempDir()}
	t.Cleanup(c.stop)
	ports := clusterPorts(t, 6)
	for _, p := range ports {
		n := &clusterNode{port: p}
		n.admin = redis.NewClient(&redis.Options{
			Addr:                  n.addr(),
			ContextTimeoutEnabled: true,
			MaxRetries:            -1,
			DialTimeout:           250 * time.Millisecond,
			ReadTimeout:           time.Second,
			WriteTimeout:          time.Second,
		})
		c.nodes = append(c.nodes, n)
		c.start(n)
		id, err := n.admin.Do(ctx, "CLUSTER", "MYID").Text()
		require.NoError(t, err)
		n.id = id
	}
	args := []string{"--cluster", "create"}
	for _, n := range c.nodes {
		args = append(args, n.addr())
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	require.NoError(t, err, "redis-cli --cluster create:\n%s", out)
	c.wait(20*time.Second, false)
	// A replica whose replication offset is 0 (its master has replicated nothing since it
	// attached) is left out of CLUSTER SLOTS, so clients would not know it: replicate something.
	for _, n := range c.nodes {
		if r, err := nodeRole(n); err == nil && r == "master" {
			require.NoError(t, n.admin.FlushAll(ctx).Err())
		}
	}
	c.waitHealthy(20 * time.Second)
	return c
}

// clusterPorts returns n distinct ports in 20000-29999 that are free, with their cluster bus
// ports (+10000) free too.
func clusterPorts(t *testing.T, n int) []int {
	t.Helper()
	free := func(p int) bool {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		_ = ln.Close()
		return true
	}
	var ports []int
	for range 1000 {
		if len(ports) == n {
			return ports
		}
		p := 20000 + rand.IntN(10000)
		if !slices.Contains(ports, p) && free(p) && free(p+10000) {
			ports = append(ports, p)
		}
	}
	t.Fatalf("no %d free pairs of ports P, P+10000 in 20000-29999", n)
	return nil
}

// start runs the node's redis-server (again, after kill: with the same nodes-P.conf, so the
// same id and its last view of the cluster) and waits until it answers PING.
func (c *testCluster) start(n *clusterNode) {
	c.t.Helper()
	p := strconv.Itoa(n.port)
	n.cmd = exec.Command("redis-server", "--port", p, "--bind", "127.0.0.1",
		"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(c.dir, "nodes-"+p+".conf"),
		"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout.Milliseconds())),
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", c.dir,
		// A replica's first sync starts at once (the default waits 5 s for more replicas).
		"--repl-diskless-sync-delay", "0",
		"--logfile", filepath.Join(c.dir, "redis-"+p+".log"), "--loglevel", "notice")
	require.NoError(c.t, n.cmd.Start())
	require.Eventually(c.t, func() bool { return n.admin.Ping(ctx).Err() == nil },
		10*time.Second, 5*time.Millisecond, "redis-server on port %d did not start", n.port)
}

// kill stops the node at once (SIGKILL): what it held is lost.
func (c *testCluster) kill(n *clusterNode) {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

// stop kills every node; if the test failed, it logs the end of each node's log first.
func (c *testCluster) stop() {
	for _, n := range c.nodes {
		c.kill(n)
		_ = n.admin.Close()
		if c.t.Failed() {
			log, _ := os.ReadFile(filepath.Join(c.dir, "redis-"+strconv.Itoa(n.port)+".log"))
			lines := strings.Split(strings.TrimSpace(string(log)), "\n")
			c.t.Logf("log of %s (%s), last lines:\n%s", n, n.id, strings.Join(lines[max(0, len(lines)-15):], "\n"))
		}
	}
}

// seeds returns the addresses of every node, for a ClusterClient.
func (c *testCluster) seeds() []string {
	var addrs []string
	for _, n := range c.nodes {
		addrs = append(addrs, n.addr())
	}
	return addrs
}

// client returns a new ClusterClient of the cluster, as one instance of a service has, with
// ContextTimeoutEnabled and the fault tests' timeouts; configure, if not nil, may change its
// options (ReadOnly, RouteByLatency...). It is closed when the test ends.
func (c *testCluster) client(configure func(*redis.ClusterOptions)) *redis.ClusterClient {
	opt := &redis.ClusterOptions{
		Addrs:                 c.seeds(),
		ContextTimeoutEnabled: true,
		DialTimeout:           faultTimeout,
		ReadTimeout:           faultTimeout,
		WriteTimeout:          faultTimeout,
	}
	if configure != nil {
		configure(opt)
	}
	cc := redis.NewClusterClient(opt)
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// node returns the node of id, or nil.
func (c *testCluster) node(id string) *clusterNode {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// nodeLine is one line of CLUSTER NODES: what the node asked knows of one node.
type nodeLine struct {
	id, addr string
	flags    []string
	master   string // the id of its master if it is a replica, else "-"
	slots    [][2]int
}

func (l nodeLine) is(flag string) bool { return slices.Contains(l.flags, flag) }

// view returns what n says of the cluster: CLUSTER INFO's cluster_state and CLUSTER NODES.
func (c *testCluster) view(n *clusterNode) (state string, lines []nodeLine, err error) {
	info, err := n.admin.ClusterInfo(ctx).Result()
	if err != nil {
		return "", nil, err
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "cluster_state:"); ok {
			state = v
		}
	}
	out, err := n.admin.ClusterNodes(ctx).Result()
	if err != nil {
		return "", nil, err
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 8 {
			return "", nil, fmt.Errorf("CLUSTER NODES of %s: odd line %q", n, l)
		}
		nl := nodeLine{id: f[0], addr: strings.Split(strings.Split(f[1], "@")[0], ",")[0],
			flags: strings.Split(f[2], ","), master: f[3]}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue // a slot being migrated or imported
			}
			lo, hi, ok := strings.Cut(s, "-")
			if !ok {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				return "", nil, fmt.Errorf("CLUSTER NODES of %s: odd slots %q", n, s)
			}
			nl.slots = append(nl.slots, [2]int{a, b})
		}
		lines = append(lines, nl)
	}
	return state, lines, nil
}

// slotOwner returns the id of the master that owns slot in lines, or "".
func slotOwner(lines []nodeLine, slot int) string {
	for _, l := range lines {
		if !l.is("master") {
			continue
		}
		for _, r := range l.slots {
			if r[0] <= slot && slot <= r[1] {
				return l.id
			}
		}
	}
	return ""
}

// agreedOwner returns the owner of slot that every live node names, with every live node
// saying cluster_state:ok; or an error that says why not.
func (c *testCluster) agreedOwner(slot int) (string, error) {
	var id string
	for _, n := range c.nodes {
		if !n.up() {
			continue
		}
		state, lines, err := c.view(n)
		if err != nil {
			return "", fmt.Errorf("%s: %w", n, err)
		}
		if state != "ok" {
			return "", fmt.Errorf("%s says cluster_state:%s", n, state)
		}
		o := slotOwner(lines, slot)
		if o == "" {
			return "", fmt.Errorf("%s says nobody owns slot %d", n, slot)
		}
		if id != "" && o != id {
			return "", fmt.Errorf("the nodes disagree on the owner of slot %d: %s, %s", slot, id, o)
		}
		id = o
	}
	return id, nil
}

// masterOf returns the master of slot, which every live node agrees on.
func (c *testCluster) masterOf(slot int) *clusterNode {
	c.t.Helper()
	id, err := c.agreedOwner(slot)
	require.NoError(c.t, err)
	n := c.node(id)
	require.NotNil(c.t, n, "slot %d is owned by %s, not a node of the test", slot, id)
	return n
}

// replicaOf returns the live replica of master, as master sees it.
func (c *testCluster) replicaOf(master *clusterNode) *clusterNode {
	c.t.Helper()
	_, lines, err := c.view(master)
	require.NoError(c.t, err)
	for _, l := range lines {
		if l.master == master.id && l.is("slave") && !l.is("fail") && !l.is("fail?") {
			if n := c.node(l.id); n != nil && n.up() {
				return n
			}
		}
	}
	c.t.Fatalf("%s has no live replica", master)
	return nil
}

// nodeRole returns the first element of ROLE on n: "master" or "slave".
func nodeRole(n *clusterNode) (string, error) {
	r, err := n.admin.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", err
	}
	if len(r) == 0 {
		return "", errors.New("empty ROLE")
	}
	s, _ := r[0].(string)
	return s, nil
}

// replicaLinkUp reports whether n is a replica whose link to its master is up.
func replicaLinkUp(n *clusterNode) bool {
	info, err := n.admin.Info(ctx, "replication").Result()
	return err == nil && strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up")
}

// waitHealthy waits until every live node says cluster_state:ok, knows every node and none of
// the live ones as failing, every node agrees on the owner of every slot, every live replica's
// link to its master is up, and CLUSTER SLOTS lists every live replica (as clients learn them).
func (c *testCluster) waitHealthy(timeout time.Duration) {
	c.t.Helper()
	c.wait(timeout, true)
}

// wait is waitHealthy, with or without its CLUSTER SLOTS condition.
func (c *testCluster) wait(timeout time.Duration, listed bool) {
	c.t.Helper()
	var why error
	healthy := func() error {
		var owners []string // of each slot, as the first node says
		for _, n := range c.nodes {
			if !n.up() {
				continue
			}
			state, lines, err := c.view(n)
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			if state != "ok" {
				return fmt.Errorf("%s says cluster_state:%s", n, state)
			}
			if len(lines) != len(c.nodes) {
				return fmt.Errorf("%s knows %d nodes", n, len(lines))
			}
			for _, l := range lines {
				if m := c.node(l.id); m != nil && m.up() && (l.is("fail") || l.is("fail?") || l.is("handshake")) {
					return fmt.Errorf("%s says %s is %v", n, m, l.flags)
				}
			}
			mine := make([]string, 0, 16384)
			for slot := range 16384 {
				mine = append(mine, slotOwner(lines, slot))
			}
			if owners == nil {
				owners = mine
			} else if i := slices.IndexFunc(mine, func(id string) bool { return id == "" }); i >= 0 {
				return fmt.Errorf("%s says nobody owns slot %d", n, i)
			} else if !slices.Equal(owners, mine) {
				return fmt.Errorf("the nodes disagree on the owners of the slots (%s)", n)
			}
			r, err := nodeRole(n)
			if err != nil {
				return fmt.Errorf("%s: ROLE: %w", n, err)
			}
			if r == "slave" && !replicaLinkUp(n) {
				return fmt.Errorf("%s: its link to its master is not up", n)
			}
			if !listed {
				continue
			}
			// What clients learn: every live replica is listed with its master's slots.
			slots, err := n.admin.ClusterSlots(ctx).Result()
			if err != nil {
				return fmt.Errorf("%s: CLUSTER SLOTS: %w", n, err)
			}
			for _, s := range slots {
				if len(s.Nodes) == 0 {
					return fmt.Errorf("%s: CLUSTER SLOTS: no node for %d-%d", n, s.Start, s.End)
				}
				want := 1
				for _, l := range lines {
					if m := c.node(l.id); m != nil && m.up() && l.master != "-" && c.node(l.master) != nil &&
						c.node(l.master).addr() == s.Nodes[0].Addr {
						want++
					}
				}
				if len(s.Nodes) != want {
					return fmt.Errorf("%s: CLUSTER SLOTS lists %d nodes for %d-%d, not %d", n, len(s.Nodes), s.Start, s.End, want)
				}
			}
		}
		return nil
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if why = healthy(); why == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("the cluster is not healthy after %v: %v", timeout, why)
}

// waitPromoted waits until e.new says it is a master, then until every live node agrees it owns
// slot, and fills in e.promoted and e.agreed.
func (c *testCluster) waitPromoted(e *failoverEvent, slot int, timeout time.Duration) {
	c.t.Helper()
	deadline := e.start.Add(timeout)
	var why error
	for time.Now().Before(deadline) {
		if e.promoted.IsZero() {
			if r, err := nodeRole(e.new); err == nil && r == "master" {
				e.promoted = time.Now()
			}
		}
		if !e.promoted.IsZero() {
			id, err := c.agreedOwner(slot)
			if err == nil && id == e.new.id {
				e.agreed = time.Now()
				return
			}
			why = err
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("failover %s -> %s of slot %d not done after %v (promoted: %v): %v",
		e.old, e.new, slot, timeout, !e.promoted.IsZero(), why)
}

// gracefulFailover sends CLUSTER FAILOVER to the replica of the master of slot (a manual
// failover: the master stops its clients until the replica has caught up, then the replica takes
// over), and waits until the replica is master and every node agrees.
func (c *testCluster) gracefulFailover(slot int) failoverEvent {
	c.t.Helper()
	old := c.masterOf(slot)
	e := failoverEvent{old: old, new: c.replicaOf(old), start: time.Now()}
	require.NoError(c.t, e.new.admin.Do(ctx, "CLUSTER", "FAILOVER").Err())
	c.waitPromoted(&e, slot, 15*time.Second)
	return e
}

// killMaster kills the master of slot (SIGKILL: the writes its replica had not received are
// lost), and waits until its replica is promoted and every live node agrees, with
// cluster_state:ok. The killed node stays down until restart.
func (c *testCluster) killMaster(slot int) failoverEvent {
	c.t.Helper()
	old := c.masterOf(slot)
	e := failoverEvent{old: old, new: c.replicaOf(old), start: time.Now()}
	c.kill(old)
	c.waitPromoted(&e, slot, 20*time.Second)
	return e
}

// killMasterLagging is killMaster with a replica that lags: it freezes the replica (SIGSTOP),
// cuts the master's replication link, lets the master acknowledge writes alone for lag, kills it,
// and thaws the replica, which then has none of the writes of those last lag and is promoted.
func (c *testCluster) killMasterLagging(slot int, lag time.Duration) failoverEvent {
	c.t.Helper()
	old := c.masterOf(slot)
	rep := c.replicaOf(old)
	require.NoError(c.t, rep.cmd.Process.Signal(syscall.SIGSTOP))
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			_ = rep.cmd.Process.Signal(syscall.SIGCONT)
		}
	}
	defer thaw()
	require.NoError(c.t, old.admin.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err())
	time.Sleep(lag)
	e := failoverEvent{old: old, new: rep, start: time.Now()}
	c.kill(old)
	thaw()
	c.waitPromoted(&e, slot, 20*time.Second)
	return e
}

// restart starts a killed node again. It comes back empty, with its old view of the cluster,
// learns that its slots have moved on, and rejoins as a replica of the master that took them
// over; restart returns once it is a replica whose link is up and the cluster is healthy again.
func (c *testCluster) restart(n *clusterNode) {
	c.t.Helper()
	require.False(c.t, n.up(), "%s is running", n)
	c.start(n)
	c.waitHealthy(20 * time.Second)
	r, err := nodeRole(n)
	require.NoError(c.t, err)
	require.Equal(c.t, "slave", r, "%s rejoins as a replica", n)
}

// commandCalls returns how many times each node ran cmd (INFO commandstats), by node, for the
// nodes that are up.
func (c *testCluster) commandCalls(cmd string) map[*clusterNode]int64 {
	calls := map[*clusterNode]int64{}
	for _, n := range c.nodes {
		if !n.up() {
			continue
		}
		info, err := n.admin.Info(ctx, "commandstats").Result()
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewBufferString(info))
		for sc.Scan() {
			rest, ok := strings.CutPrefix(sc.Text(), "cmdstat_"+cmd+":calls=")
			if !ok {
				continue
			}
			v, _, _ := strings.Cut(rest, ",")
			calls[n], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return calls
}

// roles returns the role of each node that is up ("master" or "slave").
func (c *testCluster) roles() map[*clusterNode]string {
	roles := map[*clusterNode]string{}
	for _, n := range c.nodes {
		if n.up() {
			roles[n], _ = nodeRole(n)
		}
	}
	return roles
}

// redisLog counts what go-redis logs instead of printing it: a cluster client whose node fails
// logs the same line thousands of times.
type redisLog struct {
	mu    sync.Mutex
	lines map[string]int // by format
}

// quietRedisLog makes go-redis log into a redisLog until the test ends, and then logs to stderr
// again, as by default.
func quietRedisLog(t *testing.T) *redisLog {
	l := &redisLog{lines: map[string]int{}}
	redis.SetLogger(l)
	t.Cleanup(logging.Enable)
	return l
}

func (l *redisLog) Printf(_ context.Context, format string, _ ...any) {
	l.mu.Lock()
	l.lines[format]++
	l.mu.Unlock()
}

// String returns each line go-redis logged, with its count, most frequent first.
func (l *redisLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	formats := make([]string, 0, len(l.lines))
	for f := range l.lines {
		formats = append(formats, f)
	}
	slices.SortFunc(formats, func(a, b string) int { return l.lines[b] - l.lines[a] })
	var out []string
	for _, f := range formats {
		out = append(out, fmt.Sprintf("%d× %q", l.lines[f], strings.TrimPrefix(f, "redis: ")))
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, ", ")
}

// subscribers returns how many pub/sub clients each node that is up has, with its role.
func (c *testCluster) subscribers() string {
	var out []string
	for _, n := range c.nodes {
		if !n.up() {
			continue
		}
		list, err := n.admin.ClientList(ctx).Result()
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", n, err))
			continue
		}
		subs := strings.Count(list, " sub=1 ")
		if subs > 0 {
			r, _ := nodeRole(n)
			out = append(out, fmt.Sprintf("%s (%s) %d", n, r, subs))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}
