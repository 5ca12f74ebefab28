// Package bench compares sessiond's stores, manager and daemon with the Go
// session libraries people reach for (alexedwards/scs and gorilla/sessions)
// and with the floor: raw go-redis GET/SET of a value of the same size, all
// against one Redis in one run. It is its own module so that the product
// never depends on the peers. Run it with run.sh, which starts the Redis,
// runs every benchmark with -count and prints the table.
//
// Every benchmark has a Serial and a P16 variant: P16 runs 16 goroutines
// whatever -cpu says (b.SetParallelism(16/GOMAXPROCS)), the load of a busy
// server.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/memory"
	"github.com/sessiond/sessiond/store/nearcache"
	redisstore "github.com/sessiond/sessiond/store/redis"
)

// payloadSize is the size of one stored session, for every contender.
const payloadSize = 400

// goroutines is the concurrency of the P16 variants.
const goroutines = 16

// keysPerBench is how many distinct sessions each benchmark cycles through.
const keysPerBench = 1024

// userJSON returns an upstream profile padded to n bytes of JSON.
func userJSON(userID string, n int) []byte {
	head := `{"id":"` + userID + `","email":"alice@example.com","name":"Alice Example","roles":["reader","editor"],"pad":"`
	tail := `"}`
	pad := max(n-len(head)-len(tail), 0)
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// device is the same for every session of the benchmarks.
var device = store.Device{UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", IP: "203.0.113.7"}

// ourUserLen is the user JSON length that makes our stored Redis value
// payloadSize bytes: 101 bytes of header, the user ID, the device texts
// and four separators (see store/redis/codec.go). Checked by
// TestPayloadSizes.
func ourUserLen(userID string) int {
	return payloadSize - 101 - len(userID) - len(device.UserAgent) - len(device.IP) - 4
}

// each runs op serially and with 16 goroutines. op gets a distinct index
// per call.
func each(b *testing.B, op func(i int) error) {
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
	b.Run(fmt.Sprintf("P%d", goroutines), func(b *testing.B) {
		var next atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(max(1, goroutines/runtime.GOMAXPROCS(0)))
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

// redisEnv is the one Redis of the run: REDIS_URL (run.sh sets it) or a
// redis-server the benchmark starts.
type redisEnv struct {
	srv    *redistest.Server
	client *goredis.Client
	prefix string
}

func newRedisEnv(b testing.TB) *redisEnv {
	b.Helper()
	srv := redistest.Standalone(b)
	// Pool sized for the P16 variants, as every contender's pool is.
	opts := srv.Options()
	opts.PoolSize = 4 * goroutines
	c := goredis.NewClient(opts)
	b.Cleanup(func() { _ = c.Close() })
	return &redisEnv{srv: srv, client: c, prefix: redistest.Prefix(b)}
}

// ourSessions creates keysPerBench sessions in st (10 per user) and
// returns their tokens.
func ourSessions(b testing.TB, st store.Store) []string {
	b.Helper()
	tokens := make([]string, keysPerBench)
	for i := range tokens {
		userID := fmt.Sprintf("bench-user-%05d", i/10)
		token, err := store.NewToken(userID)
		require.NoError(b, err)
		id, err := store.IDFromToken(token)
		require.NoError(b, err)
		_, err = st.Create(context.Background(), &store.Session{
			ID: id, UserID: userID, User: userJSON(userID, ourUserLen(userID)), Device: device,
			ExpiresAt: time.Now().Add(time.Hour),
		}, store.CreateOptions{})
		require.NoError(b, err)
		tokens[i] = token
	}
	return tokens
}

func ids(b *testing.B, tokens []string) []string {
	b.Helper()
	out := make([]string, len(tokens))
	for i, t := range tokens {
		id, err := store.IDFromToken(t)
		require.NoError(b, err)
		out[i] = id
	}
	return out
}

func quietManager(b *testing.B, st store.Store) *manager.Manager {
	b.Helper()
	m, err := manager.New(st, manager.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, err)
	return m
}

// serve runs requests through h, one recorder each, as an app server
// would; the i-th request is a shallow copy of reqs[i%len], since
// gorilla/sessions stores its registry in the request in place (a reused
// request would find the session cached). Every contender pays the copy.
func serve(b *testing.B, h http.Handler, reqs []*http.Request) {
	// Each request once, untimed: pools dialled, caches warm.
	for _, r := range reqs {
		c := *r
		h.ServeHTTP(httptest.NewRecorder(), &c)
	}
	each(b, func(i int) error {
		rec := httptest.NewRecorder()
		r := *reqs[i%len(reqs)]
		h.ServeHTTP(rec, &r)
		if rec.Code != http.StatusOK {
			return fmt.Errorf("status %d: %s", rec.Code, rec.Body)
		}
		return nil
	})
}

// BenchmarkFloor is raw go-redis on payloadSize-byte values: what any
// Redis-backed store must pay at least.
func BenchmarkFloor(b *testing.B) {
	e := newRedisEnv(b)
	ctx := context.Background()
	value := strings.Repeat("v", payloadSize)
	keys := make([]string, keysPerBench)
	for i := range keys {
		keys[i] = fmt.Sprintf("%sfloor:%d", e.prefix, i)
		require.NoError(b, e.client.Set(ctx, keys[i], value, time.Hour).Err())
	}
	b.Run("GET", func(b *testing.B) {
		each(b, func(i int) error { return e.client.Get(ctx, keys[i%len(keys)]).Err() })
	})
	b.Run("SET", func(b *testing.B) {
		each(b, func(i int) error { return e.client.Set(ctx, keys[i%len(keys)], value, time.Hour).Err() })
	})
	// The same GET through go-redis's auto-pipeliner (deferred face, as
	// redis.Options.AutoPipelineGets uses it): the floor of the rows that
	// batch their Gets.
	b.Run("GETAutoPipelined", func(b *testing.B) {
		ap, err := e.client.AsyncAutoPipeline()
		require.NoError(b, err)
		each(b, func(i int) error {
			cmd := goredis.NewStringCmd(ctx, "get", keys[i%len(keys)])
			return ap.Submit(ctx, cmd).WaitContext(ctx)
		})
	})
}

// BenchmarkOurs is sessiond's library: the stores alone, then a whole
// request through manager.Middleware to a handler calling
// GetServerSession (the session cookie resolved, no extension due).
func BenchmarkOurs(b *testing.B) {
	ctx := context.Background()
	b.Run("RedisGet", func(b *testing.B) {
		e := newRedisEnv(b)
		st, err := redisstore.New(e.client, redisstore.Options{KeyPrefix: e.prefix})
		require.NoError(b, err)
		keys := ids(b, ourSessions(b, st))
		each(b, func(i int) error { _, err := st.Get(ctx, keys[i%len(keys)]); return err })
	})
	b.Run("RedisGetAutoPipelined", func(b *testing.B) {
		e := newRedisEnv(b)
		st, err := redisstore.New(e.client, redisstore.Options{KeyPrefix: e.prefix, AutoPipelineGets: true})
		require.NoError(b, err)
		keys := ids(b, ourSessions(b, st))
		each(b, func(i int) error { _, err := st.Get(ctx, keys[i%len(keys)]); return err })
	})
	b.Run("MemoryGet", func(b *testing.B) {
		st := memory.New(memory.Options{})
		b.Cleanup(func() { _ = st.Close() })
		keys := ids(b, ourSessions(b, st))
		each(b, func(i int) error { _, err := st.Get(ctx, keys[i%len(keys)]); return err })
	})
	b.Run("NearCacheGet", func(b *testing.B) {
		st := newNearCache(b)
		keys := ids(b, ourSessions(b, st))
		for _, id := range keys { // warm: every timed Get is a hit
			_, err := st.Get(ctx, id)
			require.NoError(b, err)
		}
		each(b, func(i int) error { _, err := st.Get(ctx, keys[i%len(keys)]); return err })
	})
	b.Run("ManagerRedis", func(b *testing.B) {
		e := newRedisEnv(b)
		st, err := redisstore.New(e.client, redisstore.Options{KeyPrefix: e.prefix})
		require.NoError(b, err)
		benchManager(b, st)
	})
	b.Run("ManagerRedisAutoPipelined", func(b *testing.B) {
		e := newRedisEnv(b)
		st, err := redisstore.New(e.client, redisstore.Options{KeyPrefix: e.prefix, AutoPipelineGets: true})
		require.NoError(b, err)
		benchManager(b, st)
	})
	b.Run("ManagerNearCache", func(b *testing.B) {
		benchManager(b, newNearCache(b))
	})
	b.Run("ManagerMemory", func(b *testing.B) {
		st := memory.New(memory.Options{})
		b.Cleanup(func() { _ = st.Close() })
		benchManager(b, st)
	})
}

// newNearCache is the Redis store behind a near cache, subscribed.
func newNearCache(b *testing.B) *nearcache.Cache {
	b.Helper()
	e := newRedisEnv(b)
	st, err := redisstore.New(e.client, redisstore.Options{KeyPrefix: e.prefix})
	require.NoError(b, err)
	nc, err := nearcache.New(st, e.client, nearcache.Options{KeyPrefix: e.prefix, MaxEntries: 10 * keysPerBench})
	require.NoError(b, err)
	b.Cleanup(func() { _ = nc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(b, nc.WaitReady(ctx))
	return nc
}

func benchManager(b *testing.B, st store.Store) {
	m := quietManager(b, st)
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := m.GetServerSession(r)
		if err != nil {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, s.UserID)
	}))
	serve(b, h, cookieRequests(b, m.CookieName(), ourSessions(b, st)))
}

// cookieRequests makes one GET / per token carrying it in cookie name.
func cookieRequests(b *testing.B, name string, tokens []string) []*http.Request {
	b.Helper()
	reqs := make([]*http.Request, len(tokens))
	for i, t := range tokens {
		reqs[i] = httptest.NewRequest("GET", "/", nil)
		reqs[i].AddCookie(&http.Cookie{Name: name, Value: t})
	}
	return reqs
}
