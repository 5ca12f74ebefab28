// Package redistest gives tests real Redis servers: Standalone for one
// server (or the one REDIS_URL names), StartServer for a server the test owns
// and may kill and restart, StartSentinel for a master, a replica and a
// Sentinel, StartCluster/SharedCluster for a real 3-master Redis Cluster,
// and StartClusterWithReplicas for one whose masters have a replica each.
//
// Servers are redis-server processes on free loopback ports with their data
// in a temporary directory. They are stopped by PID when the test ends and,
// on Linux, killed by the kernel if the test binary dies first (a
// parent-death signal; it fires when the starting OS thread exits, which
// Go does only for goroutines that die locked to their thread: do not
// start servers from such a goroutine).
//
// Without a redis-server binary on PATH the calls skip the test with a
// message, except under CI=true, where they fail it: CI must never pass by
// skipping the real-Redis tests.
//
// Isolation: a test that shares a server (REDIS_URL, SharedCluster, or one
// server for many subtests) must confine itself to keys under a prefix of
// its own: Server.Prefix(t) (which also deletes the keys afterwards on a
// REDIS_URL server) or Prefix(t). Only a test that got its servers from
// StartServer, StartSentinel or StartCluster owns them and may FLUSHALL,
// change their CONFIG or kill them. REDIS_URL applies to Standalone only;
// Sentinel and Cluster tests always start their own processes.
package redistest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// How long a server may take to answer PING after it was started, and a
// cluster to reach cluster_state:ok after it was formed.
const (
	startTimeout   = 10 * time.Second
	clusterTimeout = 30 * time.Second
	// portAttempts bounds the retries when another process grabs the port
	// between our probe and redis-server's bind.
	portAttempts = 20
)

// requireBinary returns the path of a binary, or ends the test: a skip
// normally, a failure under CI=true.
func requireBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found; install redis-server or set REDIS_URL", name)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: real-Redis tests must run)")
	}
	t.Skip(msg)
	return ""
}

// Server is one Redis server a test can reach.
type Server struct {
	addr     string
	opts     *goredis.Options // template for Options; never handed out
	external bool

	// Only for servers this package started.
	bin  string
	dir  string
	args []string

	mu   sync.Mutex
	proc *process // nil when stopped
}

// process is one running redis-server. done is closed when it has exited
// and been reaped.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid after done
}

// Standalone returns a Redis server for the test: the one REDIS_URL names
// if it is set, otherwise a fresh redis-server that the test's cleanup stops.
// The server may be shared with other tests (REDIS_URL): use Prefix(t) for
// every key. A test that must own its server calls StartServer.
func Standalone(t testing.TB) *Server {
	t.Helper()
	if url := os.Getenv("REDIS_URL"); url != "" {
		opts, err := goredis.ParseURL(url)
		if err != nil {
			t.Fatalf("redistest: REDIS_URL: %v", err)
		}
		s := &Server{addr: opts.Addr, opts: opts, external: true}
		c := goredis.NewClient(s.Options())
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatalf("redistest: REDIS_URL server does not answer: %v", err)
		}
		return s
	}
	return StartServer(t)
}

// StartServer starts a redis-server owned by the test, whatever REDIS_URL
// says, with extra command-line arguments appended (for example
// "--appendonly", "yes" or "--maxmemory", "10mb"). The test may kill and
// restart it; cleanup stops it.
func StartServer(t testing.TB, args ...string) *Server {
	t.Helper()
	bin := requireBinary(t, "redis-server")
	s, err := startServer(bin, t.TempDir(), nil, false, args)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(func() { _ = s.Kill() })
	return s
}

// startServer picks a free port and starts redis-server in dir, retrying
// when the port turns out to be taken. pre goes first (a config file),
// extra last.
func startServer(bin, dir string, pre []string, cluster bool, extra []string) (*Server, error) {
	var lastErr error
	for range portAttempts {
		port, err := freePort(cluster)
		if err != nil {
			return nil, err
		}
		args := append(slices.Clone(pre),
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--save", "",
			"--appendonly", "no",
			"--dir", dir,
			"--daemonize", "no",
			"--logfile", "redis.log",
		)
		if cluster {
			args = append(args,
				"--cluster-enabled", "yes",
				"--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", "5000",
			)
		}
		args = append(args, extra...)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s := &Server{
			addr: addr,
			opts: &goredis.Options{Addr: addr},
			bin:  bin, dir: dir, args: args,
		}
		err = s.Start()
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "in use") {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no free port after %d attempts: %w", portAttempts, lastErr)
}

// freePort returns a loopback port nobody listens on. Ports come from
// 20000-29999, below Linux's ephemeral range, so outgoing connections do
// not collide with them; a cluster node also needs port+10000 free for its
// bus.
func freePort(cluster bool) (int, error) {
	for range 100 {
		n, err := rand.Int(rand.Reader, big.NewInt(10000))
		if err != nil {
			return 0, err
		}
		port := 20000 + int(n.Int64())
		if !portFree(port) || cluster && !portFree(port+10000) {
			continue
		}
		return port, nil
	}
	return 0, errors.New("redistest: no free loopback port found")
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// Start (re)starts a server this package started, on the same port, with
// the same arguments and data directory (so an AOF or RDB file written
// before a Kill is loaded again), and waits until it answers PING.
func (s *Server) Start() error {
	if s.external {
		return errors.New("redistest: cannot start an external (REDIS_URL) server")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("redistest: server already running")
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: start redis-server: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := waitReady(s.addr, p); err != nil {
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("redistest: redis-server %s: %w\n%s", s.addr, err, s.logTail())
	}
	s.proc = p
	return nil
}

// waitReady polls the server until it answers as the process we started,
// the process exits or the start timeout passes. Checking the PID matters:
// when two test binaries race for one port, the loser must not mistake the
// winner's server for its own.
func waitReady(addr string, p *process) error {
	deadline := time.Now().Add(startTimeout)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		pid, err := serverPID(addr, 200*time.Millisecond)
		if err == nil && pid == p.cmd.Process.Pid {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before answering PING: %v", p.err)
		case <-time.After(delay):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to PING within %v", startTimeout)
		}
	}
}

// serverPID asks a server for its process_id (INFO server), speaking just
// enough RESP to avoid the pools and retries of a client. A server still
// loading its data answers -LOADING: not ready yet.
func serverPID(addr string, timeout time.Duration) (int, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if strings.HasPrefix(line, "-") {
			return 0, fmt.Errorf("INFO answered %q", strings.TrimSpace(line))
		}
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.dir + "/redis.log")
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Kill sends SIGKILL (as a crash would) and waits until the process is
// gone. Killing a stopped server is a no-op.
func (s *Server) Kill() error { return s.stop(syscall.SIGKILL) }

// Stop asks the server to shut down (SIGTERM: it writes its AOF/RDB as
// configured) and waits; after 10 seconds it kills it.
func (s *Server) Stop() error { return s.stop(syscall.SIGTERM) }

func (s *Server) stop(sig syscall.Signal) error {
	if s.external {
		return errors.New("redistest: cannot stop an external (REDIS_URL) server")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

// Restart stops the server gracefully and starts it again on the same port.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

// PID returns the redis-server process ID, or 0 if it is not running or
// not ours.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return s.addr }

// URL returns a redis:// URL for the server (the REDIS_URL itself for an
// external server), for code under test that is configured by URL.
func (s *Server) URL() string {
	if s.external {
		return os.Getenv("REDIS_URL")
	}
	return "redis://" + s.addr + "/0"
}

// Dir returns the server's data directory ("" for an external server).
func (s *Server) Dir() string { return s.dir }

// Owned reports whether the test owns the server (it was started by this
// package), so it may flush, reconfigure or kill it.
func (s *Server) Owned() bool { return !s.external }

// Options returns fresh go-redis options for the server; the caller may
// change them.
func (s *Server) Options() *goredis.Options {
	o := *s.opts
	return &o
}

// Client returns a client of the server that the test's cleanup closes.
func (s *Server) Client(t testing.TB) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(s.Options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var prefixSeq atomic.Uint64

var unsafeKeyChars = regexp.MustCompile(`[^A-Za-z0-9_/.-]+`)

// Prefix returns a key prefix unique to this test, this run and this call,
// such as "t:TestStore/Get:3f9a1c:7:". Tests on a shared server keep every
// key under it. It never contains '{' or '}', so it cannot change which
// Redis Cluster slot a hash-tagged key lands in.
func Prefix(t testing.TB) string {
	name := unsafeKeyChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	return fmt.Sprintf("t:%s:%s:%d:", name, runID, prefixSeq.Add(1))
}

// Prefix returns a key prefix unique to the test, like the package-level
// Prefix. On an external (REDIS_URL) server, the test's cleanup also
// deletes every key under it, so repeated runs leave nothing behind; a
// server the test owns dies with it anyway.
func (s *Server) Prefix(t testing.TB) string {
	t.Helper()
	p := Prefix(t)
	if s.external {
		t.Cleanup(func() {
			c := goredis.NewClient(s.Options())
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			defer cancel()
			iter := c.Scan(ctx, 0, p+"*", 1000).Iterator()
			for iter.Next(ctx) {
				c.Del(ctx, iter.Val())
			}
			if err := iter.Err(); err != nil {
				t.Errorf("redistest: deleting keys under %q: %v", p, err)
			}
		})
	}
	return p
}

// runID tells apart test binaries sharing one REDIS_URL server.
var runID = func() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// Cluster is a real Redis Cluster of three masters, without replicas
// unless it comes from StartClusterWithReplicas.
type Cluster struct {
	// Nodes are the masters; a test that owns the cluster may kill them.
	Nodes []*Server
	// Replicas[i], if any, is the replica of Nodes[i].
	Replicas []*Server
}

// StartCluster starts a 3-master Redis Cluster owned by the test and waits
// until every node reports cluster_state:ok. Cleanup stops the nodes.
// Starting a cluster takes a second or two: tests that only need keys of
// their own should use SharedCluster.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	server := requireBinary(t, "redis-server")
	cli := requireBinary(t, "redis-cli")
	c, err := startCluster(server, cli, t.TempDir())
	if c != nil {
		t.Cleanup(c.kill)
	}
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	return c
}

func startCluster(server, cli, dir string) (*Cluster, error) {
	c := &Cluster{}
	for i := range 3 {
		nodeDir := fmt.Sprintf("%s/node%d", dir, i)
		if err := os.MkdirAll(nodeDir, 0o700); err != nil {
			return c, err
		}
		s, err := startServer(server, nodeDir, nil, true, nil)
		if err != nil {
			return c, err
		}
		c.Nodes = append(c.Nodes, s)
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.SysProcAttr = sysProcAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		return c, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	return c, c.waitOK(ctx)
}

// StartClusterWithReplicas starts a Redis Cluster of three masters with
// one replica each, owned by the test: Replicas[i] replicates Nodes[i]. It
// waits until every replica is in sync, its master counts it as online
// (so WAIT counts it) and every node knows all six. Cleanup stops the
// nodes. It takes a few seconds more than StartCluster.
func StartClusterWithReplicas(t testing.TB) *Cluster {
	t.Helper()
	server := requireBinary(t, "redis-server")
	cli := requireBinary(t, "redis-cli")
	dir := t.TempDir()
	c, err := startCluster(server, cli, dir)
	if c != nil {
		t.Cleanup(c.kill)
	}
	if err == nil {
		err = c.addReplicas(server, dir)
	}
	if err != nil {
		t.Fatalf("redistest: cluster with replicas: %v", err)
	}
	return c
}

// addReplicas starts one cluster node per master and makes it that
// master's replica (CLUSTER MEET, then CLUSTER REPLICATE once the new node
// has heard of the master).
func (c *Cluster) addReplicas(server, dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	for i, m := range c.Nodes {
		mc := goredis.NewClient(m.Options())
		defer mc.Close()
		// Without it a replica's first sync waits 5 seconds for more
		// replicas to share one transfer.
		if err := mc.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err(); err != nil {
			return err
		}
		id, err := mc.ClusterMyID(ctx).Result()
		if err != nil {
			return err
		}
		nodeDir := fmt.Sprintf("%s/replica%d", dir, i)
		if err := os.MkdirAll(nodeDir, 0o700); err != nil {
			return err
		}
		r, err := startServer(server, nodeDir, nil, true, nil)
		if err != nil {
			return err
		}
		c.Replicas = append(c.Replicas, r)
		rc := goredis.NewClient(r.Options())
		defer rc.Close()
		host, port, _ := net.SplitHostPort(m.Addr())
		if err := rc.ClusterMeet(ctx, host, port).Err(); err != nil {
			return err
		}
		err = poll(ctx, func() error { return rc.ClusterReplicate(ctx, id).Err() })
		if err != nil {
			return fmt.Errorf("replica %s of %s: %w", r.Addr(), m.Addr(), err)
		}
		err = poll(ctx, func() error {
			rinfo, err := rc.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			minfo, err := mc.Info(ctx, "replication").Result()
			if err != nil {
				return err
			}
			if !strings.Contains(rinfo, "master_link_status:up") ||
				!strings.Contains(minfo, "connected_slaves:1") || !strings.Contains(minfo, "state=online") {
				return fmt.Errorf("replica %s of %s not in sync", r.Addr(), m.Addr())
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return c.waitOK(ctx)
}

// poll calls fn every 20ms until it returns nil or ctx ends, and then
// returns fn's last error.
func poll(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitOK polls CLUSTER INFO on every node until all say cluster_state:ok
// and know all the cluster's nodes.
func (c *Cluster) waitOK(ctx context.Context) error {
	all := append(slices.Clone(c.Nodes), c.Replicas...)
	known := fmt.Sprintf("cluster_known_nodes:%d", len(all))
	for _, n := range all {
		cl := goredis.NewClient(n.Options())
		var last string
		for {
			info, err := cl.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, known) {
				break
			}
			last = info
			if err != nil {
				last = err.Error()
			}
			select {
			case <-ctx.Done():
				_ = cl.Close()
				return fmt.Errorf("cluster node %s not ok: %s", n.Addr(), last)
			case <-time.After(20 * time.Millisecond):
			}
		}
		_ = cl.Close()
	}
	return nil
}

func (c *Cluster) kill() {
	for _, n := range append(slices.Clone(c.Nodes), c.Replicas...) {
		_ = n.Kill()
	}
}

// Addrs returns the masters' host:port addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Options returns fresh go-redis cluster options for the cluster.
func (c *Cluster) Options() *goredis.ClusterOptions {
	return &goredis.ClusterOptions{Addrs: c.Addrs()}
}

// Client returns a cluster client that the test's cleanup closes.
func (c *Cluster) Client(t testing.TB) *goredis.ClusterClient {
	t.Helper()
	cl := goredis.NewClusterClient(c.Options())
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// Sentinel is a master, one replica and one Sentinel (quorum 1) that
// watches them, all owned by the test. The Sentinel declares the master
// down after one second, so tests can kill the master and see the replica
// promoted.
type Sentinel struct {
	MasterName string
	Master     *Server
	Replica    *Server
	Sentinel   *Server
}

// StartSentinel starts a Sentinel setup and waits until the replica is in
// sync, the master streams writes to it (so WAIT counts it) and the
// Sentinel knows both servers. Cleanup stops all three.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	bin := requireBinary(t, "redis-server")
	dir := t.TempDir()
	s := &Sentinel{MasterName: "sessiond"}
	t.Cleanup(s.kill)
	if err := s.start(bin, dir); err != nil {
		t.Fatalf("redistest: sentinel: %v", err)
	}
	return s
}

func (s *Sentinel) start(bin, dir string) error {
	var err error
	for _, sub := range []string{"master", "replica", "sentinel"} {
		if err := os.MkdirAll(dir+"/"+sub, 0o700); err != nil {
			return err
		}
	}
	// Without the delay a replica's first sync takes 5 seconds (the
	// default waits for more replicas to share one transfer).
	noDelay := []string{"--repl-diskless-sync-delay", "0"}
	if s.Master, err = startServer(bin, dir+"/master", nil, false, noDelay); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(s.Master.Addr())
	if s.Replica, err = startServer(bin, dir+"/replica", nil, false, append(noDelay, "--replicaof", host, port)); err != nil {
		return err
	}
	conf := dir + "/sentinel/sentinel.conf"
	text := fmt.Sprintf("sentinel monitor %[1]s %[2]s %[3]s 1\n"+
		"sentinel down-after-milliseconds %[1]s 1000\n"+
		"sentinel failover-timeout %[1]s 5000\n", s.MasterName, host, port)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return err
	}
	if s.Sentinel, err = startServer(bin, dir+"/sentinel", []string{conf, "--sentinel"}, false, nil); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	master := goredis.NewClient(s.Master.Options())
	defer master.Close()
	replica := goredis.NewClient(s.Replica.Options())
	defer replica.Close()
	sentinel := goredis.NewSentinelClient(&goredis.Options{Addr: s.Sentinel.Addr()})
	defer sentinel.Close()
	for {
		// The replica's "link up" is not enough: after a diskless sync
		// the master streams writes to it (and WAIT counts it) only once
		// the master has marked it online, on the replica's first ACK, up
		// to a second later. A write made before that and the master
		// killed right after would be lost in the failover.
		info, _ := replica.Info(ctx, "replication").Result()
		minfo, _ := master.Info(ctx, "replication").Result()
		replicas, _ := sentinel.Replicas(ctx, s.MasterName).Result()
		if strings.Contains(info, "master_link_status:up") && strings.Contains(minfo, "state=online") && len(replicas) == 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica not in sync, not online on the master or unknown to the Sentinel: %s\n%s", info, minfo)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Sentinel) kill() {
	for _, srv := range []*Server{s.Sentinel, s.Replica, s.Master} {
		if srv != nil {
			_ = srv.Kill()
		}
	}
}

// FailoverOptions returns fresh go-redis options for a client that finds
// the master through the Sentinel.
func (s *Sentinel) FailoverOptions() *goredis.FailoverOptions {
	return &goredis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: []string{s.Sentinel.Addr()}}
}

// Client returns a failover client that the test's cleanup closes.
func (s *Sentinel) Client(t testing.TB) *goredis.Client {
	t.Helper()
	c := goredis.NewFailoverClient(s.FailoverOptions())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

var shared struct {
	once    sync.Once
	cluster *Cluster
	dir     string
	err     error
}

// SharedCluster returns one 3-master cluster shared by every test of the
// test binary that asks for it, started on first use. Tests must keep their
// keys under Prefix(t) and must not kill its nodes or flush it.
//
// The package's TestMain should call Main so the cluster is stopped when
// the tests end; without it the nodes die with the test binary on Linux
// (parent-death signal) and linger elsewhere.
func SharedCluster(t testing.TB) *Cluster {
	t.Helper()
	server := requireBinary(t, "redis-server")
	cli := requireBinary(t, "redis-cli")
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "redistest-cluster-")
		if shared.err != nil {
			return
		}
		shared.cluster, shared.err = startCluster(server, cli, shared.dir)
	})
	if shared.err != nil {
		t.Fatalf("redistest: shared cluster: %v", shared.err)
	}
	return shared.cluster
}

// Main runs the tests and then stops what SharedCluster started. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if shared.cluster != nil {
		shared.cluster.kill()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	return code
}
