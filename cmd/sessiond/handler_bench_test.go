package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/nearcache"
	"github.com/sessiond/sessiond/store/redis"
)

// BenchmarkResolveHandler drives POST /v1/sessions/resolve through the real
// handler in process (httptest recorder, no network), as bench/ drives
// scs's LoadAndSave, so the two compare like with like: API key checked,
// JSON body decoded, one store read, JSON answer encoded. P16 runs 16
// goroutines whatever -cpu says. bench/run.sh puts its rows beside the
// peers':
//
//	go test -run '^$' -bench ResolveHandler -benchmem -cpu 1,2 ./cmd/sessiond
func BenchmarkResolveHandler(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchResolveHandler(b, nil) })
	b.Run("redis", func(b *testing.B) { benchResolveHandler(b, benchRedisStore(b, false, false)) })
	b.Run("redis-autopipeline", func(b *testing.B) { benchResolveHandler(b, benchRedisStore(b, false, true)) })
	b.Run("nearcache", func(b *testing.B) { benchResolveHandler(b, benchRedisStore(b, true, false)) })
}

// benchRedisStore returns a Redis store on REDIS_URL (bench/run.sh sets it)
// or on a redis-server the benchmark starts, its pool sized for the P16
// variants, under a key prefix that is removed afterwards (from REDIS_URL's
// server too); with nearCache, the near cache in front of it, ready; with
// autoPipeline, Gets batched (--redis-auto-pipeline).
func benchRedisStore(b *testing.B, nearCache, autoPipeline bool) store.Store {
	b.Helper()
	srv := redistest.Standalone(b)
	opts := srv.Options()
	opts.PoolSize = 64
	rc := goredis.NewClient(opts)
	b.Cleanup(func() { _ = rc.Close() })
	prefix := srv.Prefix(b)
	st, err := redis.New(rc, redis.Options{KeyPrefix: prefix, AutoPipelineGets: autoPipeline})
	require.NoError(b, err)
	if !nearCache {
		return st
	}
	nc, err := nearcache.New(st, rc, nearcache.Options{KeyPrefix: prefix})
	require.NoError(b, err)
	b.Cleanup(func() { _ = nc.Close() })
	require.NoError(b, nc.WaitReady(context.Background()))
	return nc
}

// resetBody is a request body that each request owns: one allocation.
type resetBody struct{ bytes.Reader }

func (*resetBody) Close() error { return nil }

func benchResolveHandler(b *testing.B, st store.Store) {
	const key = "bench-key-0123456789abcdef"
	env := newTestEnv(b, envOptions{store: st, keys: []string{key}, quiet: true})
	h := env.api.handler()
	ctx := context.Background()
	reqs := make([]*http.Request, 1024)
	bodies := make([][]byte, len(reqs))
	// 400-byte stored sessions, 10 per user, as bench/ stores them.
	for i := range reqs {
		cr, err := env.c.CreateSession(ctx, client.CreateRequest{
			UserID: fmt.Sprintf("bench-user-%05d", i/10),
			User:   []byte(`{"id":"bench","email":"alice@example.com","name":"Alice Example","roles":["reader","editor"],"pad":"` + string(bytes.Repeat([]byte("x"), 160)) + `"}`),
			Device: store.Device{UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", IP: "203.0.113.7"},
		})
		require.NoError(b, err)
		bodies[i] = []byte(`{"sessionToken":"` + cr.Token + `"}`)
		reqs[i] = httptest.NewRequest("POST", "/v1/sessions/resolve", nil)
		reqs[i].Header.Set("Authorization", "Bearer "+key)
		reqs[i].Header.Set("Content-Type", "application/json")
	}
	// Each session resolved once, untimed: pools dialled, caches warm.
	for i := range reqs {
		r := *reqs[i]
		r.Body = &resetBody{*bytes.NewReader(bodies[i])}
		h.ServeHTTP(httptest.NewRecorder(), &r)
	}
	op := func(i int) error {
		r := *reqs[i%len(reqs)]
		body := &resetBody{}
		body.Reset(bodies[i%len(reqs)])
		r.Body = body
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, &r)
		if rec.Code != http.StatusOK {
			return fmt.Errorf("status %d: %s", rec.Code, rec.Body)
		}
		return nil
	}
	b.Run("Serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := op(i); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("P16", func(b *testing.B) {
		var next atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(int(next.Add(1) - 1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
