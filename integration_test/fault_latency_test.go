package integration_test

import (
	"context"
	"net/http"
	"runtime"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// Fault scenario 4: a TCP proxy between sessiond and Redis adds latency
// above go-redis's ReadTimeout (3 s), stalls, or resets connections.
// Every request must still answer within --request-timeout plus a small
// margin, sessiond's connection pool must stay bounded, and service must
// come back by itself once the fault is removed.
func TestFaultRedisLatencyStallReset(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testFaultRedisLatency(t, nil, 0) })
	// With --redis-auto-pipeline, lookups wait in go-redis's auto-pipeliner:
	// they must still end at the request deadline. The pipeliner has its
	// own pool (go-redis's DefaultPipelinePoolSize, 10), beside the main one.
	t.Run("auto-pipeline", func(t *testing.T) {
		testFaultRedisLatency(t, []string{"--redis-auto-pipeline"}, goredis.DefaultPipelinePoolSize)
	})
}

func testFaultRedisLatency(t *testing.T, args []string, extraConns int64) {
	const (
		deadline = time.Second
		margin   = 500 * time.Millisecond
		probes   = 20
		workers  = 10
	)
	rs := redistest.StartServer(t)
	proxy := startFaultProxy(t, rs.Addr())
	p := sessiondtest.Start(t, sessiondtest.Options{
		APIKey:   sessiondtest.APIKey,
		RedisURL: proxy.URL(),
		Args:     append([]string{"--request-timeout", deadline.String()}, args...),
	})
	c := p.Client()
	ctx := context.Background()
	created := createSessions(t, c, 20, 5)
	// go-redis's default pool: 10 connections per CPU of the machine.
	poolLimit := int64(10*runtime.NumCPU()) + extraConns

	faults := []struct {
		name    string
		mode    proxyMode
		latency time.Duration
	}{
		{"latency 4s", proxyLatency, 4 * time.Second},
		{"stall", proxyStall, 0},
		{"reset", proxyReset, 0},
	}
	for _, f := range faults {
		proxy.Set(f.mode, f.latency)
		proxy.ResetMax()
		results := make([]callResult, probes)
		parallel(probes, workers, func(i int) {
			start := time.Now()
			var err error
			if i%5 == 4 {
				_, err = c.CreateSession(ctx, client.CreateRequest{UserID: "u1"})
			} else {
				_, err = c.Resolve(ctx, client.ResolveRequest{SessionToken: created[i%len(created)].Token})
			}
			results[i] = classifyCall(time.Since(start), http.StatusOK, err)
		})
		var slowest time.Duration
		for i, r := range results {
			require.Equal(t, http.StatusServiceUnavailable, r.status, "%s: call #%d: %v", f.name, i, r.err)
			require.Equal(t, client.CodeStoreUnavailable, r.code, "%s: call #%d", f.name, i)
			slowest = max(slowest, r.took)
		}
		maxOpen := proxy.maxOpen.Load()
		t.Logf("REPORT latency %s: %d/%d calls 503, slowest %v (deadline %v), at most %d Redis connections open (pool limit %d)",
			f.name, probes, probes, slowest.Round(time.Millisecond), deadline, maxOpen, poolLimit)
		require.Less(t, slowest, deadline+margin, "%s: a call outlived its deadline", f.name)
		require.LessOrEqual(t, maxOpen, poolLimit, "%s: the pool grew past its limit", f.name)
	}

	// The fault goes away: sessiond recovers without a restart.
	proxy.Set(proxyPass, 0)
	recovery := waitFor(t, 10*time.Second, 20*time.Millisecond, "recovery after the fault is removed", func() bool {
		_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: created[0].Token})
		return err == nil
	})
	errs := make([]error, probes)
	parallel(probes, workers, func(i int) {
		_, errs[i] = c.Resolve(ctx, client.ResolveRequest{SessionToken: created[i%len(created)].Token})
	})
	for i, err := range errs {
		require.NoError(t, err, "resolve #%d after recovery", i)
	}
	t.Logf("REPORT latency recovery: first success %v after the fault was removed; %d/%d resolves OK after; %d connections accepted in all",
		recovery.Round(time.Millisecond), probes, probes, proxy.total.Load())
}
