package integration_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// soakFlag sets the soak's length: go test ./integration_test -run Soak
// -soak=60s (or SOAK=60s in the environment, which works with ./...).
// Default: a short run for CI.
var soakFlag = flag.Duration("soak", 0, "length of TestSoak (default 8s; SOAK env works too)")

const soakShort = 8 * time.Second

func soakDuration(t *testing.T) time.Duration {
	t.Helper()
	if *soakFlag > 0 {
		return *soakFlag
	}
	if v := os.Getenv("SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "SOAK=%q", v)
		return d
	}
	return soakShort
}

// TestSoak runs a mixed load (sign-in, resolves, sign-out, sign out
// everywhere) against two sessiond processes on one real Redis for a
// bounded time: not one request may fail, and at the end the processes'
// goroutine and heap counts (from /metrics) must be back near where they
// were after warm-up. Latency percentiles are reported, not asserted.
func TestSoak(t *testing.T) {
	length := soakDuration(t)
	_, ps := startRedisFleet(t, 2)
	cs := []*client.Client{ps[0].Client(), ps[1].Client()}

	const workers = 4
	type sample struct {
		goroutines, heap float64
	}
	read := func() []sample {
		out := make([]sample, len(ps))
		for i, p := range ps {
			out[i] = sample{metricValue(t, p, "go_goroutines"), metricValue(t, p, "go_memstats_heap_inuse_bytes")}
		}
		return out
	}

	var (
		stop      atomic.Bool
		requests  atomic.Int64
		failures  atomic.Int64
		firstFail atomic.Value
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	fail := func(what string, err error) {
		failures.Add(1)
		firstFail.CompareAndSwap(nil, fmt.Sprintf("%s: %v", what, err))
	}
	run := func(w int, warmup bool) {
		defer wg.Done()
		ctx := context.Background()
		local := make([]time.Duration, 0, 4096)
		timed := func(f func() error) error {
			start := time.Now()
			err := f()
			local = append(local, time.Since(start))
			requests.Add(1)
			return err
		}
		for i := 0; !stop.Load(); i++ {
			c := cs[i%2]
			uid := fmt.Sprintf("soak%d-%d", w, i%20) // each worker owns its users
			var cr *client.CreateResponse
			if err := timed(func() (err error) {
				cr, err = c.CreateSession(ctx, client.CreateRequest{UserID: uid})
				return err
			}); err != nil {
				fail("create", err)
				continue
			}
			for j := range 3 {
				if err := timed(func() error {
					_, err := cs[(i+j)%2].Resolve(ctx, client.ResolveRequest{SessionToken: cr.Token})
					return err
				}); err != nil {
					fail("resolve", err)
				}
			}
			switch {
			case i%10 == 9:
				if err := timed(func() error { _, err := c.RevokeUserSessions(ctx, uid); return err }); err != nil {
					fail("revoke-all", err)
				}
			case i%3 == 0:
				if err := timed(func() error { _, err := c.SignOut(ctx, cr.Token); return err }); err != nil {
					fail("sign-out", err)
				}
			}
			if warmup && i >= 50 {
				break
			}
		}
		if !warmup {
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}
	}

	// Warm-up: pools, buffers and keep-alive connections settle first.
	for w := range workers {
		wg.Add(1)
		go run(w, true)
	}
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	before := read()
	requests.Store(0)

	began := time.Now()
	for w := range workers {
		wg.Add(1)
		go run(w, false)
	}
	time.Sleep(length)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(began)
	time.Sleep(200 * time.Millisecond)
	after := read()

	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
	n := requests.Load()
	t.Logf("REPORT soak %v: %d requests (%.0f/s) on 2 sessiond + 1 Redis, %d failed; latency p50 %v p99 %v max %v",
		length, n, float64(n)/elapsed.Seconds(), failures.Load(), pct(0.50), pct(0.99), latencies[len(latencies)-1])
	for i := range ps {
		t.Logf("REPORT soak sessiond #%d: goroutines %v -> %v, heap in use %.1f MB -> %.1f MB",
			i, before[i].goroutines, after[i].goroutines, before[i].heap/1e6, after[i].heap/1e6)
	}
	require.Zero(t, failures.Load(), "failed requests; first: %v", firstFail.Load())
	require.Positive(t, n)
	for i := range ps {
		// Flat: a leak of one goroutine per request would show thousands.
		require.LessOrEqual(t, after[i].goroutines, before[i].goroutines+20, "sessiond #%d goroutines grew", i)
		require.Less(t, after[i].heap, max(4*before[i].heap, 64e6), "sessiond #%d heap grew", i)
	}
	requireNotLogged(t, ps, sessiondtest.APIKey)
}
