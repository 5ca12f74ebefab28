package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/redis"
)

// The benchmarks run on a real redis-server over loopback and report, in
// the same run, the floor: raw go-redis commands on a value of the same
// size as a stored session. "Parallel" runs 8 goroutines per CPU (16 on 2
// cores), like a busy server.
//
//	go test -run '^$' -bench . -benchmem ./store/redis/

const parallelism = 8

// benchUser is a typical upstream profile: the stored session is ~400 bytes.
var benchUser = json.RawMessage(`{"id":"8f14e45f-ceea-467f-a0e6-7ad0cd2b5b8a","email":"alice@example.com",` +
	`"name":"Alice Example","roles":["reader","editor"],"avatar":"https://cdn.example.com/a/8f14e45f.png",` +
	`"locale":"en-GB","plan":"pro","verified":true}`)

type benchEnv struct {
	client *goredis.Client
	store  *redis.Store
	prefix string
	size   int // bytes of one stored session
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	srv := redistest.Standalone(b)
	client := srv.Client(b)
	e := &benchEnv{client: client, prefix: srv.Prefix(b)}
	var err error
	e.store, err = redis.New(client, redis.Options{KeyPrefix: e.prefix})
	require.NoError(b, err)
	s := e.sessions(b, 1, 1)[0]
	_, err = e.store.Create(context.Background(), s, store.CreateOptions{})
	require.NoError(b, err)
	key := e.prefix + "session:{" + s.ID[:store.TagLen] + "}" + s.ID[store.TagLen:]
	n, err := client.StrLen(context.Background(), key).Result()
	require.NoError(b, err)
	e.size = int(n)
	return e
}

// sessions returns n fresh sessions spread over users.
func (e *benchEnv) sessions(b *testing.B, n, users int) []*store.Session {
	b.Helper()
	out := make([]*store.Session, n)
	for i := range out {
		userID := fmt.Sprintf("bench-user-%d", i%users)
		token, err := store.NewToken(userID)
		require.NoError(b, err)
		id, err := store.IDFromToken(token)
		require.NoError(b, err)
		out[i] = &store.Session{
			ID: id, UserID: userID, User: benchUser,
			Device:    store.Device{UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", IP: "203.0.113.7"},
			ExpiresAt: time.Now().Add(time.Hour),
		}
	}
	return out
}

// run runs op serially and in parallel; op gets a distinct index per call.
func run(b *testing.B, setup func(b *testing.B), op func(i int) error) {
	b.Run("Serial", func(b *testing.B) {
		if setup != nil {
			setup(b)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if err := op(i); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		if setup != nil {
			setup(b)
		}
		var next atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(parallelism)
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

func BenchmarkGet(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	ids := make([]string, 1024)
	for i, s := range e.sessions(b, len(ids), 256) {
		_, err := e.store.Create(ctx, s, store.CreateOptions{})
		require.NoError(b, err)
		ids[i] = s.ID
	}
	raw := make([]string, len(ids))
	value := strings.Repeat("v", e.size)
	for i := range raw {
		raw[i] = fmt.Sprintf("%sraw:%d", e.prefix, i)
		require.NoError(b, e.client.Set(ctx, raw[i], value, time.Hour).Err())
	}
	b.Run("Store", func(b *testing.B) {
		run(b, nil, func(i int) error {
			_, err := e.store.Get(ctx, ids[i%len(ids)])
			return err
		})
	})
	b.Run("RawGET", func(b *testing.B) {
		run(b, nil, func(i int) error {
			return e.client.Get(ctx, raw[i%len(raw)]).Err()
		})
	})
	// Options.AutoPipelineGets, beside the same raw GET through the same
	// kind of auto-pipeliner (a client of its own, as go-redis keeps one
	// pipeliner per client).
	pc := goredis.NewClient(e.client.Options())
	b.Cleanup(func() { _ = pc.Close() })
	pst, err := redis.New(pc, redis.Options{KeyPrefix: e.prefix, AutoPipelineGets: true})
	require.NoError(b, err)
	ap, err := pc.AsyncAutoPipeline()
	require.NoError(b, err)
	b.Run("StoreAutoPipelined", func(b *testing.B) {
		run(b, nil, func(i int) error {
			_, err := pst.Get(ctx, ids[i%len(ids)])
			return err
		})
	})
	b.Run("RawGETAutoPipelined", func(b *testing.B) {
		run(b, nil, func(i int) error {
			cmd := goredis.NewStringCmd(ctx, "get", raw[i%len(raw)])
			return ap.Submit(ctx, cmd).WaitContext(ctx)
		})
	})
}

func BenchmarkCreate(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	var sessions []*store.Session
	setup := func(b *testing.B) {
		sessions = e.sessions(b, b.N, 1024)
	}
	b.Run("Store", func(b *testing.B) {
		run(b, setup, func(i int) error {
			_, err := e.store.Create(ctx, sessions[i], store.CreateOptions{})
			return err
		})
	})
	value := strings.Repeat("v", e.size)
	b.Run("RawSET", func(b *testing.B) {
		run(b, nil, func(i int) error {
			return e.client.Set(ctx, e.prefix+"raw:"+sessions[i%len(sessions)].ID, value, time.Hour).Err()
		})
	})
}

func BenchmarkDelete(b *testing.B) {
	e := newBenchEnv(b)
	ctx := context.Background()
	var sessions []*store.Session
	b.Run("Store", func(b *testing.B) {
		run(b, func(b *testing.B) {
			sessions = e.sessions(b, b.N, 1024)
			for _, s := range sessions {
				_, err := e.store.Create(ctx, s, store.CreateOptions{})
				require.NoError(b, err)
			}
		}, func(i int) error {
			return e.store.Delete(ctx, sessions[i].ID)
		})
	})
	value := strings.Repeat("v", e.size)
	var keys []string
	b.Run("RawDEL", func(b *testing.B) {
		run(b, func(b *testing.B) {
			keys = make([]string, b.N)
			pipe := e.client.Pipeline()
			for i := range keys {
				keys[i] = fmt.Sprintf("%sraw:%d", e.prefix, i)
				pipe.Set(ctx, keys[i], value, time.Hour)
			}
			_, err := pipe.Exec(ctx)
			require.NoError(b, err)
		}, func(i int) error {
			return e.client.Del(ctx, keys[i]).Err()
		})
	})
}
