package redistest

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestStartServerKillRestart(t *testing.T) {
	ctx := context.Background()
	s := StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	require.True(t, s.Owned())
	opts := s.Options()
	opts.MaxRetries = -1 // fail fast while the server is down
	c := goredis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	pid := s.PID()
	require.NotZero(t, pid)

	require.NoError(t, s.Kill())
	require.Zero(t, s.PID())
	require.Error(t, c.Get(ctx, "k").Err(), "a killed server must not answer")

	require.NoError(t, s.Start())
	require.NotEqual(t, pid, s.PID())
	got, err := c.Get(ctx, "k").Result()
	require.NoError(t, err, "the AOF written before the kill must be loaded on restart")
	require.Equal(t, "v", got)

	require.NoError(t, s.Restart())
	require.Error(t, s.Start(), "starting a running server must fail")
}

func TestStandaloneStoppedOnCleanup(t *testing.T) {
	var s *Server
	t.Run("owner", func(t *testing.T) {
		t.Setenv("REDIS_URL", "")
		s = Standalone(t)
		require.NotZero(t, s.PID())
		require.Equal(t, "redis://"+s.Addr()+"/0", s.URL())
	})
	require.Zero(t, s.PID(), "cleanup must stop the server")
	_, err := serverPID(s.Addr(), 0)
	require.Error(t, err, "nothing may answer on %s after cleanup", s.Addr())
}

func TestStandaloneUsesRedisURL(t *testing.T) {
	own := StartServer(t)
	t.Setenv("REDIS_URL", own.URL())
	s := Standalone(t)
	require.False(t, s.Owned())
	require.Equal(t, own.Addr(), s.Addr())
	require.Zero(t, s.PID())
	require.Error(t, s.Kill(), "an external server must not be killable")
	require.NoError(t, s.Client(t).Ping(context.Background()).Err())

	// Keys under the test's prefix on an external server go with the test.
	ctx := context.Background()
	var prefix string
	t.Run("writer", func(t *testing.T) {
		prefix = s.Prefix(t)
		require.NoError(t, s.Client(t).Set(ctx, prefix+"k", "v", 0).Err())
	})
	require.NoError(t, own.Client(t).Set(ctx, "other", "v", 0).Err())
	keys, err := own.Client(t).Keys(ctx, "*").Result()
	require.NoError(t, err)
	require.Equal(t, []string{"other"}, keys, "keys under %q must be deleted, others kept", prefix)
}

func TestPrefixUniqueAndTagFree(t *testing.T) {
	a, b := Prefix(t), Prefix(t)
	require.NotEqual(t, a, b)
	t.Run("odd {name} with spaces", func(t *testing.T) {
		p := Prefix(t)
		require.NotContains(t, p, "{")
		require.NotContains(t, p, "}")
		require.NotContains(t, p, " ")
	})
}

// fakeTB records how requireBinary ends a test without ending this one.
type fakeTB struct {
	testing.TB
	skipped, failed string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatal(args ...any) {
	f.failed = fmt.Sprint(args...)
	runtime.Goexit()
}

func TestMissingBinarySkipsOrFailsUnderCI(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			requireBinary(f, "redis-server")
		}()
		<-done
		if ci == "true" {
			require.Contains(t, f.failed, "redis-server not found")
			require.Empty(t, f.skipped)
		} else {
			require.Equal(t, "redis-server not found; install redis-server or set REDIS_URL", f.skipped)
			require.Empty(t, f.failed)
		}
	}
}

func TestSharedCluster(t *testing.T) {
	ctx := context.Background()
	c := SharedCluster(t)
	require.Same(t, c, SharedCluster(t), "SharedCluster must start one cluster per binary")
	require.Len(t, c.Nodes, 3)
	for _, n := range c.Nodes {
		info, err := n.Client(t).ClusterInfo(ctx).Result()
		require.NoError(t, err)
		require.Contains(t, info, "cluster_state:ok")
		require.Contains(t, info, "cluster_size:3")
	}
	cl := c.Client(t)
	p := Prefix(t)
	// Keys of many slots: every master must take writes via the client.
	for i := range 30 {
		require.NoError(t, cl.Set(ctx, fmt.Sprintf("%s%d", p, i), i, 0).Err())
	}
	var masters atomic.Int32 // ForEachMaster runs fn concurrently
	require.NoError(t, cl.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		masters.Add(1)
		return m.Ping(ctx).Err()
	}))
	require.EqualValues(t, 3, masters.Load())
	require.True(t, strings.HasPrefix(p, "t:TestSharedCluster:"))
}

func TestSentinelFailover(t *testing.T) {
	ctx := context.Background()
	s := StartSentinel(t)
	c := s.Client(t)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	// Without the replica's acknowledgement the write may not survive the
	// failover, and the loop below would wait for a key that is gone.
	acked, err := c.Wait(ctx, 1, time.Second).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, acked, "the replica must acknowledge the write")

	require.NoError(t, s.Master.Kill())
	// The Sentinel declares the master down after 1s and promotes the
	// replica; the failover client follows it.
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := c.Get(ctx, "k").Result()
		if err == nil {
			require.Equal(t, "v", got)
			break
		}
		require.True(t, time.Now().Before(deadline), "no failover within 20s: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	role, err := s.Replica.Client(t).Do(ctx, "ROLE").Slice()
	require.NoError(t, err)
	require.Equal(t, "master", role[0], "the replica must have been promoted")
}
