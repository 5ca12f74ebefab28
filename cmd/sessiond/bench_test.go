package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/store"
)

// BenchmarkResolveHTTP drives POST /v1/sessions/resolve of the real handler
// over loopback HTTP (keep-alive connections, API key checked, JSON both
// ways) with parallel clients, against the memory store and a real Redis.
// It reports requests per second and p50/p99 latency:
//
//	go test -run '^$' -bench ResolveHTTP -benchtime 5s ./cmd/sessiond
//
// Each runs with 2 clients and with 16: batched lookups
// (redis-autopipeline) cost latency when few requests are in flight and
// pay off when many are.
func BenchmarkResolveHTTP(b *testing.B) {
	for _, clients := range []int{2, 16} {
		name := fmt.Sprintf("/c%d", clients)
		b.Run("memory"+name, func(b *testing.B) { benchResolve(b, nil, clients) })
		b.Run("redis"+name, func(b *testing.B) { benchResolve(b, benchRedisStore(b, false, false), clients) })
		b.Run("redis-autopipeline"+name, func(b *testing.B) { benchResolve(b, benchRedisStore(b, false, true), clients) })
	}
}

// benchResolve resolves with clients concurrent HTTP clients (rounded up
// to a multiple of GOMAXPROCS).
func benchResolve(b *testing.B, st store.Store, clients int) {
	const key = "bench-key-0123456789abcdef"
	env := newTestEnv(b, envOptions{store: st, keys: []string{key}, quiet: true})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	b.Cleanup(hc.CloseIdleConnections)
	c, err := client.New(env.srv.URL, client.WithAPIKey(key), client.WithHTTPClient(hc))
	require.NoError(b, err)
	ctx := context.Background()
	tokens := make([]string, 1000)
	for i := range tokens {
		cr, err := c.CreateSession(ctx, client.CreateRequest{UserID: fmt.Sprint("user-", i), User: []byte(`{"name":"Bench User","roles":["a","b"]}`)})
		require.NoError(b, err)
		tokens[i] = cr.Token
	}

	var mu sync.Mutex
	var all []time.Duration
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		lat := make([]time.Duration, 0, 1024)
		for pb.Next() {
			t0 := time.Now()
			if _, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: tokens[rand.IntN(len(tokens))]}); err != nil {
				b.Error(err)
				return
			}
			lat = append(lat, time.Since(t0))
		}
		mu.Lock()
		all = append(all, lat...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(all[len(all)*50/100].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}
