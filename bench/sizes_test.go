package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
	redisstorage "github.com/sessiond/sessiond/store/redis"
)

// storedSizes returns the length of every string value under prefix.
func storedSizes(tb testing.TB, e *redisEnv, match string) []int64 {
	tb.Helper()
	ctx := context.Background()
	var sizes []int64
	iter := e.client.Scan(ctx, 0, match, 1000).Iterator()
	for iter.Next(ctx) {
		if typ, err := e.client.Type(ctx, iter.Val()).Result(); err != nil || typ != "string" {
			continue
		}
		n, err := e.client.StrLen(ctx, iter.Val()).Result()
		require.NoError(tb, err)
		sizes = append(sizes, n)
	}
	require.NoError(tb, iter.Err())
	return sizes
}

// TestPayloadSizes checks that every contender stores payloadSize bytes
// per session (within a few bytes: gob varints), so the benchmarks
// compare like with like.
func TestPayloadSizes(t *testing.T) {
	e := newRedisEnv(t)
	st, err := redisstorage.New(e.client, redisstorage.Options{KeyPrefix: e.prefix})
	require.NoError(t, err)
	createOurs(t, st, 1)
	scsSessions(t, newSCS(redisstore.NewWithPrefix(redigoPool(t, e), e.prefix+"scs:")))
	gorillaSessions(t, e)
	for _, c := range []struct{ name, match string }{
		{"ours", e.prefix + "session:*"},
		{"scs", e.prefix + "scs:*"},
		{"gorilla", e.prefix + "gorilla:*"},
	} {
		sizes := storedSizes(t, e, c.match)
		require.NotEmpty(t, sizes, c.name)
		for _, n := range sizes {
			require.InDelta(t, payloadSize, n, 4, "%s stores %d bytes per session, want %d", c.name, n, payloadSize)
		}
	}
}

// createOurs creates users×10 sessions in st.
func createOurs(tb testing.TB, st store.Store, users int) {
	tb.Helper()
	for i := range users * 10 {
		userID := fmt.Sprintf("bench-user-%05d", i/10)
		token, err := store.NewToken(userID)
		require.NoError(tb, err)
		id, err := store.IDFromToken(token)
		require.NoError(tb, err)
		_, err = st.Create(context.Background(), &store.Session{
			ID: id, UserID: userID, User: userJSON(userID, ourUserLen(userID)), Device: device,
			ExpiresAt: time.Now().Add(time.Hour),
		}, store.CreateOptions{})
		require.NoError(tb, err)
	}
}

func usedMemory(tb testing.TB, e *redisEnv) int64 {
	tb.Helper()
	info, err := e.client.Info(context.Background(), "memory").Result()
	require.NoError(tb, err)
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			require.NoError(tb, err)
			return n
		}
	}
	tb.Fatal("INFO memory has no used_memory")
	return 0
}

// BenchmarkRedisMemory reports Redis's memory per session (INFO memory
// used_memory before and after, divided by the sessions): 400-byte
// payload, 10 sessions per user. Run it with -benchtime 1x on a Redis
// nothing else writes to (run.sh's).
func BenchmarkRedisMemory(b *testing.B) {
	const users = 2048 // n is a multiple of keysPerBench
	const n = users * 10
	measure := func(b *testing.B, fill func(e *redisEnv)) {
		for b.Loop() {
			e := newRedisEnv(b)
			before := usedMemory(b, e)
			fill(e)
			b.ReportMetric(float64(usedMemory(b, e)-before)/n, "B/session")
			// Leave the server as found for the next contender.
			keys, err := e.client.Keys(context.Background(), e.prefix+"*").Result()
			require.NoError(b, err)
			for len(keys) > 0 {
				k := min(len(keys), 1000)
				require.NoError(b, e.client.Del(context.Background(), keys[:k]...).Err())
				keys = keys[k:]
			}
		}
	}
	b.Run("Floor", func(b *testing.B) {
		measure(b, func(e *redisEnv) {
			v := strings.Repeat("v", payloadSize)
			for i := range n {
				require.NoError(b, e.client.Set(context.Background(), fmt.Sprintf("%sfloor:%d", e.prefix, i), v, time.Hour).Err())
			}
		})
	})
	b.Run("Ours", func(b *testing.B) {
		measure(b, func(e *redisEnv) {
			st, err := redisstorage.New(e.client, redisstorage.Options{KeyPrefix: e.prefix})
			require.NoError(b, err)
			createOurs(b, st, users)
		})
	})
	b.Run("SCS", func(b *testing.B) {
		measure(b, func(e *redisEnv) {
			sm := newSCS(redisstore.NewWithPrefix(redigoPool(b, e), e.prefix+"scs:"))
			for range n / keysPerBench {
				scsSessions(b, sm)
			}
		})
	})
	b.Run("Gorilla", func(b *testing.B) {
		measure(b, func(e *redisEnv) {
			for range n / keysPerBench {
				gorillaSessions(b, e)
			}
		})
	})
}
