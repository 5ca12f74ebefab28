package integration_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// startSentinels starts n Sentinel processes (quorum n/2+1) watching the
// master at masterAddr under name, and waits until each knows the others
// and replicas replicas. The redistest harness starts only one Sentinel;
// this is the production shape. Linux only: the processes get the
// parent-death signal, so none outlives a crashed test binary.
func startSentinels(t *testing.T, name, masterAddr string, n, replicas int) []string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server not on PATH")
		}
		t.Skip("redis-server not on PATH")
	}
	host, port, _ := net.SplitHostPort(masterAddr)
	var addrs []string
	for i := range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close()
		_, p, _ := net.SplitHostPort(addr)
		dir := t.TempDir()
		conf := filepath.Join(dir, "sentinel.conf")
		text := fmt.Sprintf("port %s\nbind 127.0.0.1\ndir %s\n"+
			"sentinel monitor %s %s %s %d\n"+
			"sentinel down-after-milliseconds %[3]s 1000\n"+
			"sentinel failover-timeout %[3]s 5000\n", p, dir, name, host, port, n/2+1)
		require.NoError(t, os.WriteFile(conf, []byte(text), 0o600))
		cmd := exec.Command(bin, conf, "--sentinel")
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		logf, err := os.Create(filepath.Join(dir, "log"))
		require.NoError(t, err)
		cmd.Stdout, cmd.Stderr = logf, logf
		require.NoError(t, cmd.Start(), "sentinel #%d", i)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			<-done
		})
		addrs = append(addrs, addr)
	}
	ctx := context.Background()
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for ready := false; !ready; time.Sleep(50 * time.Millisecond) {
		ready = true
		for _, a := range addrs {
			sc := goredis.NewSentinelClient(&goredis.Options{Addr: a})
			m, err := sc.Master(ctx, name).Result()
			sc.Close()
			if err != nil || m["num-other-sentinels"] != strconv.Itoa(n-1) || m["num-slaves"] != strconv.Itoa(replicas) {
				last = fmt.Sprintf("sentinel %s: %v %v", a, m, err)
				ready = false
				break
			}
		}
		require.True(t, ready || time.Now().Before(deadline), "sentinels knowing each other and %d replicas: %s", replicas, last)
	}
	return addrs
}

// sentinelMaster asks a Sentinel where the master is now.
func sentinelMaster(t *testing.T, sentinel, name string) string {
	t.Helper()
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: sentinel})
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(context.Background(), name).Result()
	if err != nil {
		return ""
	}
	return net.JoinHostPort(a[0], a[1])
}

// Fault scenario 2 with the WAIT option: one master, two replicas (one
// reached through a proxy that the test stalls, as a lagging network
// link), three Sentinels (quorum 2). While the link is stalled, users sign
// out; then the master dies and the Sentinels promote the lagging replica.
// Without --redis-wait-replicas the acknowledged sign-outs are undone
// (the revoked sessions are back); with --redis-wait-replicas 2 those
// sign-outs were answered 503 instead (not acknowledged), and no
// acknowledged sign-out is undone. The cost of WAIT in normal operation is
// measured.
func TestFaultSentinelWaitAfterRevocation(t *testing.T) {
	for _, tc := range []struct {
		name string
		wait int
	}{{"NoWait", 0}, {"Wait2", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			testWaitAfterRevocation(t, tc.wait)
		})
	}
}

func testWaitAfterRevocation(t *testing.T, wait int) {
	const name = "sessiond"
	master := redistest.StartServer(t, "--repl-diskless-sync-delay", "0")
	proxy := startFaultProxy(t, master.Addr())
	ph, pp, _ := net.SplitHostPort(proxy.Addr())
	mh, mp, _ := net.SplitHostPort(master.Addr())
	// The lagging replica reaches the master through the proxy; the other
	// one directly. Only the lagging one is eligible for promotion, as
	// when the healthy one is in the failed master's zone.
	lagging := redistest.StartServer(t, "--replicaof", ph, pp, "--replica-priority", "1")
	healthy := redistest.StartServer(t, "--replicaof", mh, mp, "--replica-priority", "0")
	ctx := context.Background()
	waitFor(t, 20*time.Second, 50*time.Millisecond, "replicas in sync", func() bool {
		for _, r := range []*redistest.Server{lagging, healthy} {
			info, _ := r.Client(t).Info(ctx, "replication").Result()
			if !strings.Contains(info, "master_link_status:up") {
				return false
			}
		}
		return true
	})
	sentinels := startSentinels(t, name, master.Addr(), 3, 2)

	p := sessiondtest.Start(t, sessiondtest.Options{
		APIKey: sessiondtest.APIKey,
		Args: []string{"--store", "redis", "--redis-sentinel-master", name,
			"--redis-sentinel-addrs", strings.Join(sentinels, ","),
			"--redis-wait-replicas", strconv.Itoa(wait), "--redis-wait-timeout", "200ms",
			"--request-timeout", "2s", "--failed-token-rate", "0"},
	})
	c := p.Client()
	created := createSessions(t, c, 60, 10)

	// Normal operation: sign-outs 0..19, timed.
	var normal []time.Duration
	for i := range 20 {
		start := time.Now()
		_, err := c.SignOut(ctx, created[i].Token)
		require.NoError(t, err, "sign-out #%d with healthy replicas", i)
		normal = append(normal, time.Since(start))
	}
	slices.Sort(normal)

	// The link to the lagging replica stalls; sign-outs 20..29.
	proxy.Set(proxyStall, 0)
	time.Sleep(100 * time.Millisecond)
	acked := map[int]bool{}
	refused := 0
	for i := 20; i < 30; i++ {
		_, err := c.SignOut(ctx, created[i].Token)
		switch {
		case err == nil:
			acked[i] = true
		case client.IsCode(err, client.CodeStoreUnavailable):
			refused++
		default:
			t.Fatalf("sign-out #%d during the stall: %v", i, err)
		}
	}

	// The master dies; the Sentinels promote the lagging replica.
	require.NoError(t, master.Kill())
	waitFor(t, 30*time.Second, 50*time.Millisecond, "failover to the lagging replica", func() bool {
		return sentinelMaster(t, sentinels[0], name) == lagging.Addr()
	})
	resumed := waitFor(t, 30*time.Second, 50*time.Millisecond, "sessiond serving from the new master", func() bool {
		_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: created[59].Token})
		return err == nil
	})

	undone, undoneEarly := 0, 0
	for i := range 30 {
		_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: created[i].Token})
		if err == nil {
			if i < 20 {
				undoneEarly++
			} else if acked[i] {
				undone++
			}
			continue
		}
		require.True(t, client.IsCode(err, client.CodeInvalidToken), "resolve #%d after the failover: %v", i, err)
	}
	t.Logf("REPORT wait=%d: sign-out p50 %v, max %v (20 sign-outs) with healthy replicas; during the stall %d acknowledged, %d answered 503; after the failover (sessiond served again %v after the promotion): %d acknowledged sign-outs undone, %d earlier ones undone",
		wait, normal[len(normal)/2].Round(10*time.Microsecond), normal[len(normal)-1].Round(10*time.Microsecond),
		len(acked), refused, resumed.Round(time.Millisecond), undone, undoneEarly)
	require.Zero(t, undoneEarly, "sign-outs made before the stall were undone")
	if wait > 0 {
		require.Zero(t, undone, "an acknowledged sign-out was undone by the failover")
		require.Equal(t, 10, refused, "sign-outs that could not reach both replicas must not be acknowledged")
	} else {
		require.Positive(t, undone, "without WAIT the failover undid no sign-out: the demonstration proves nothing")
	}
}

// Fault scenario 2 in its production shape: one master, two replicas,
// three Sentinels (quorum 2); the master is killed under a mixed load.
func TestFaultSentinelFailoverThreeSentinels(t *testing.T) {
	const name = "sessiond"
	master := redistest.StartServer(t, "--repl-diskless-sync-delay", "0")
	mh, mp, _ := net.SplitHostPort(master.Addr())
	ctx := context.Background()
	for range 2 {
		r := redistest.StartServer(t, "--replicaof", mh, mp)
		waitFor(t, 20*time.Second, 50*time.Millisecond, "replica in sync", func() bool {
			info, _ := r.Client(t).Info(ctx, "replication").Result()
			return strings.Contains(info, "master_link_status:up")
		})
	}
	sentinels := startSentinels(t, name, master.Addr(), 3, 2)
	failoverUnderLoad(t, "2 replicas, 3 sentinels", name, sentinels, master.Kill, master.Addr())
}
