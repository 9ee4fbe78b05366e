package stampede_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/redistest"
)

// A sentinelSet is a Redis Sentinel setup that one test owns: a primary and one replica
// (redis-server processes without persistence) and three Sentinels that monitor them with
// quorum 2, all on free loopback ports and killed when the test ends.
//
// Its Sentinels declare the primary down after 1 s without an answer (down-after-milliseconds),
// so a killed primary is replaced within 2 to 4 s. Sentinel promotes the replica first and
// reconfigures the old primary as a replica of it only later: at least 8 s after it sees the old
// primary again (Sentinel's own wait, not configurable), so after a graceful failover the old
// primary goes on accepting writes from any client that still talks to it for that long.
//
// Each of its methods fails the test (t.Fatal) when what it waits for does not happen in time;
// call them from the test's goroutine.
type sentinelSet struct {
	t         *testing.T
	nodes     []*sentinelProc // the data nodes; nodes[0] starts as the primary, nodes[1] as its replica
	sentinels []*sentinelProc
}

// sentinelMaster is the name under which the Sentinels of a sentinelSet monitor its primary.
const sentinelMaster = "stampede"

// Sentinel's settings for the sentinelSet's primary.
const (
	sentinelDownAfter       = time.Second
	sentinelFailoverTimeout = 5 * time.Second
)

// sentinelWait bounds each wait of the sentinelSet's helpers: setup, promotion, resync. A
// failover whose election fails is retried after twice the failover timeout, and a restarted
// node is reconfigured 8 to 20 s after it is back.
const sentinelWait = 30 * time.Second

// sentinelProc is one redis-server process of a sentinelSet: a data node or a Sentinel.
type sentinelProc struct {
	port int
	dir  string
	log  string   // its log file
	args []string // its command line, without the --replicaof a data node starts with
	cmd  *exec.Cmd

	client   *redis.Client         // a data node's admin client
	sentinel *redis.SentinelClient // a Sentinel's client
}

func (p *sentinelProc) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

// startSentinelSet starts a primary, waits for a replica to sync with it, starts three
// Sentinels, and returns once each Sentinel sees the primary up, the replica in sync and the two
// other Sentinels. It is an integration test's helper: skipped without STAMPEDE_REDIS_ADDR (the
// Sentinel set does not use that Redis), and failed without redis-server when integration tests
// are required.
func startSentinelSet(t *testing.T) *sentinelSet {
	t.Helper()
	redistest.Addr(t)
	if _, err := exec.LookPath("redis-server"); err != nil {
		if redistest.Required() {
			t.Fatalf("redis-server is not on PATH: %v", err)
		}
		t.Skipf("redis-server is not on PATH: %v", err)
	}
	base := t.TempDir() // before the Cleanup below, so that it is removed after the processes die
	s := &sentinelSet{t: t}
	t.Cleanup(s.stop)

	for i := range 2 {
		dir := filepath.Join(base, "node"+strconv.Itoa(i))
		require.NoError(t, os.Mkdir(dir, 0o755))
		p := &sentinelProc{port: freePort(t), dir: dir, log: filepath.Join(dir, "redis.log")}
		p.args = []string{"--port", strconv.Itoa(p.port), "--bind", "127.0.0.1", "--save", "",
			"--appendonly", "no", "--daemonize", "no", "--dir", dir, "--logfile", p.log,
			"--loglevel", "notice", "--repl-diskless-sync-delay", "0"}
		p.client = redis.NewClient(sentinelAdminOptions(p.addr()))
		s.nodes = append(s.nodes, p)
	}
	primary, replica := s.nodes[0], s.nodes[1]
	s.start(primary)
	s.start(replica, "--replicaof", "127.0.0.1", strconv.Itoa(primary.port))
	s.waitReplica(replica, primary)

	// Each Sentinel's config names the others (known-sentinel, as Sentinel itself writes it),
	// so that they need not wait for each other's hello messages (every 2 s) to agree.
	ids := make([]string, 3)
	for i := range 3 {
		var id [20]byte
		_, _ = rand.Read(id[:])
		ids[i] = hex.EncodeToString(id[:])
		dir := filepath.Join(base, "sentinel"+strconv.Itoa(i))
		require.NoError(t, os.Mkdir(dir, 0o755))
		p := &sentinelProc{port: freePort(t), dir: dir, log: filepath.Join(dir, "sentinel.log")}
		p.args = []string{filepath.Join(dir, "sentinel.conf"), "--sentinel"}
		p.sentinel = redis.NewSentinelClient(sentinelAdminOptions(p.addr()))
		s.sentinels = append(s.sentinels, p)
	}
	for i, p := range s.sentinels {
		conf := []string{
			"port " + strconv.Itoa(p.port),
			"bind 127.0.0.1",
			"protected-mode no",
			"daemonize no",
			"dir " + p.dir,
			"logfile " + p.log,
			"loglevel notice",
			"sentinel myid " + ids[i],
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", sentinelMaster, primary.port),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", sentinelMaster, sentinelDownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", sentinelMaster, sentinelFailoverTimeout.Milliseconds()),
			fmt.Sprintf("sentinel parallel-syncs %s 1", sentinelMaster),
		}
		for j, o := range s.sentinels {
			if j != i {
				conf = append(conf, fmt.Sprintf("sentinel known-sentinel %s 127.0.0.1 %d %s", sentinelMaster, o.port, ids[j]))
			}
		}
		// Sentinel rewrites its config file: it must be writable.
		require.NoError(t, os.WriteFile(p.args[0], []byte(strings.Join(conf, "\n")+"\n"), 0o644))
		s.start(p)
	}
	s.waitFor("every Sentinel sees the primary, the replica and the other Sentinels", sentinelWait, func() error {
		for _, p := range s.sentinels {
			if err := s.sentinelReady(p, primary, replica); err != nil {
				return fmt.Errorf("Sentinel %s: %w", p.addr(), err)
			}
		}
		return nil
	})
	return s
}

// sentinelReady returns why Sentinel p does not see primary up with replica in sync and the
// other two Sentinels, or nil.
func (s *sentinelSet) sentinelReady(p, primary, replica *sentinelProc) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m, err := p.sentinel.Master(ctx, sentinelMaster).Result()
	if err != nil {
		return err
	}
	if m["flags"] != "master" || m["port"] != strconv.Itoa(primary.port) || m["num-other-sentinels"] != "2" {
		return fmt.Errorf("master %s:%s flags %q, %s other Sentinels", m["ip"], m["port"], m["flags"], m["num-other-sentinels"])
	}
	rs, err := p.sentinel.Replicas(ctx, sentinelMaster).Result()
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r["port"] == strconv.Itoa(replica.port) && r["flags"] == "slave" && r["master-link-status"] == "ok" {
			return nil
		}
	}
	return fmt.Errorf("the replica is not known in sync: %v", rs)
}

// sentinelAdminOptions are the options of the set's own clients of its processes: one attempt
// per call, so that a poll of a dead node fails at once (go-redis dials 5 times by default,
// 100 ms apart).
func sentinelAdminOptions(addr string) *redis.Options {
	return &redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second}
}

// client returns a new failover client of the set, as each instance of a service has, named
// name in CLIENT LIST when name is not empty, with the fault tests' timeouts. It is closed
// when the test ends.
func (s *sentinelSet) client(name string) *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:            sentinelMaster,
		SentinelAddrs:         s.sentinelAddrs(),
		ClientName:            name,
		ContextTimeoutEnabled: true,
		DialTimeout:           faultTimeout,
		ReadTimeout:           faultTimeout,
		WriteTimeout:          faultTimeout,
	})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

func (s *sentinelSet) sentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, p := range s.sentinels {
		addrs[i] = p.addr()
	}
	return addrs
}

// primaryViews returns the primary's address as each Sentinel reports it ("" for a Sentinel
// that does not answer).
func (s *sentinelSet) primaryViews() []string {
	views := make([]string, len(s.sentinels))
	for i, p := range s.sentinels {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		a, err := p.sentinel.GetMasterAddrByName(ctx, sentinelMaster).Result()
		cancel()
		if err == nil && len(a) == 2 {
			views[i] = a[0] + ":" + a[1]
		}
	}
	return views
}

// primaryAddr returns the primary's address as a majority of the Sentinels report it, or ""
// while no majority agrees.
func (s *sentinelSet) primaryAddr() string {
	views := s.primaryViews()
	for _, v := range views {
		if v != "" && 2*countOf(views, v) > len(views) {
			return v
		}
	}
	return ""
}

func countOf(views []string, v string) int {
	n := 0
	for _, x := range views {
		if x == v {
			n++
		}
	}
	return n
}

// node returns the data node at addr.
func (s *sentinelSet) node(addr string) *sentinelProc {
	s.t.Helper()
	for _, p := range s.nodes {
		if p.addr() == addr {
			return p
		}
	}
	s.t.Fatalf("no data node of the Sentinel set at %q", addr)
	return nil
}

// gracefulFailover asks one Sentinel to fail over (SENTINEL FAILOVER) and returns the new
// primary once a Sentinel reports it and it has the role master. The Sentinels that did not
// lead the failover learn of it from their peers' hello messages, up to 2 s later; the old
// primary stays a primary, taking writes, until Sentinel reconfigures it (see sentinelSet).
func (s *sentinelSet) gracefulFailover() *sentinelProc {
	s.t.Helper()
	old := s.primaryAddr()
	require.NotEmpty(s.t, old, "the Sentinels do not agree on a primary")
	s.waitFor("SENTINEL FAILOVER is accepted", 5*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err := s.sentinels[0].sentinel.Failover(ctx, sentinelMaster).Err()
		if err != nil && !strings.Contains(err.Error(), "NOGOODSLAVE") {
			s.t.Fatalf("SENTINEL FAILOVER: %v", err)
		}
		return err // no replica fit yet: Sentinel has not had its INFO recently enough
	})
	return s.waitPromoted(old)
}

// killPrimary kills the primary (SIGKILL: what it held is lost), and returns it and the new
// primary once a Sentinel reports it and it has the role master.
func (s *sentinelSet) killPrimary() (killed, promoted *sentinelProc) {
	s.t.Helper()
	old := s.primaryAddr()
	require.NotEmpty(s.t, old, "the Sentinels do not agree on a primary")
	killed = s.node(old)
	killed.kill()
	return killed, s.waitPromoted(old)
}

// waitPromoted waits until a Sentinel reports a primary other than old, with the role master.
func (s *sentinelSet) waitPromoted(old string) *sentinelProc {
	s.t.Helper()
	var promoted *sentinelProc
	s.waitFor("a Sentinel reports a new primary, with the role master", sentinelWait, func() error {
		for _, v := range s.primaryViews() {
			if v == "" || v == old {
				continue
			}
			p := s.node(v)
			if role, err := s.role(p); err != nil || role != "master" {
				return fmt.Errorf("a Sentinel reports %s, whose role is %q (%v)", v, role, err)
			}
			promoted = p
			return nil
		}
		return fmt.Errorf("the Sentinels report %v", s.primaryViews())
	})
	return promoted
}

// waitAgree waits until every Sentinel reports p as the primary.
func (s *sentinelSet) waitAgree(p *sentinelProc) {
	s.t.Helper()
	s.waitFor("every Sentinel reports "+p.addr(), sentinelWait, func() error {
		if v := s.primaryViews(); countOf(v, p.addr()) != len(v) {
			return fmt.Errorf("the Sentinels report %v", v)
		}
		return nil
	})
}

// restart starts the killed node p again, empty, as a primary: as a node whose config names no
// primary comes back after a crash. The Sentinels then reconfigure it as a replica of the
// current primary, at least 8 s later (see waitReplica).
func (s *sentinelSet) restart(p *sentinelProc) {
	s.t.Helper()
	require.Nil(s.t, p.cmd, "%s is running", p.addr())
	s.start(p)
}

// waitReplica waits until p replicates primary with its link up. After restart, the
// Sentinels take 8 to 20 s to reconfigure it.
func (s *sentinelSet) waitReplica(p, primary *sentinelProc) {
	s.t.Helper()
	s.waitFor(p.addr()+" replicates "+primary.addr(), sentinelWait, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		info, err := p.client.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "role:slave") ||
			!strings.Contains(info, "master_port:"+strconv.Itoa(primary.port)+"\r\n") ||
			!strings.Contains(info, "master_link_status:up") {
			return errors.New(info)
		}
		return nil
	})
}

// role returns the role of data node p: master or slave.
func (s *sentinelSet) role(p *sentinelProc) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := p.client.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "", err
	}
	role, _ := r[0].(string)
	return role, nil
}

// start starts p, with extra arguments after its own, and waits until it answers PING.
func (s *sentinelSet) start(p *sentinelProc, extra ...string) {
	s.t.Helper()
	p.cmd = exec.Command("redis-server", append(slices.Clone(p.args), extra...)...)
	require.NoError(s.t, p.cmd.Start())
	s.waitFor(p.addr()+" answers PING", 10*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if p.sentinel != nil {
			return p.sentinel.Ping(ctx).Err()
		}
		return p.client.Ping(ctx).Err()
	})
}

// kill stops p at once (SIGKILL).
func (p *sentinelProc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.cmd = nil
}

// stop kills every process and closes the admin clients. When the test failed, it logs the end
// of the Sentinels' logs, which tell what they saw and did.
func (s *sentinelSet) stop() {
	for _, p := range append(slices.Clone(s.nodes), s.sentinels...) {
		p.kill()
		if p.client != nil {
			_ = p.client.Close()
		}
		if p.sentinel != nil {
			_ = p.sentinel.Close()
		}
	}
	if !s.t.Failed() {
		return
	}
	for _, p := range s.sentinels {
		b, _ := os.ReadFile(p.log)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		s.t.Logf("the end of the log of Sentinel %s:\n%s", p.addr(), strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
}

// waitFor calls cond every 10 ms until it returns nil, and fails the test with its last error
// if that takes longer than timeout.
func (s *sentinelSet) waitFor(what string, timeout time.Duration, cond func() error) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("sentinel set: %s: not after %v: %v", what, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
