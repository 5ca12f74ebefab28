package redis_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/redis"
)

// TestAutoPipelineGets: with Options.AutoPipelineGets, Gets ride pipelines
// (concurrent ones share them) and every write stays a command of its own.
func TestAutoPipelineGets(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Standalone(t)
	client := srv.Client(t)
	hook := &pipelineHook{}
	client.AddHook(hook)
	st, err := redis.New(client, redis.Options{KeyPrefix: srv.Prefix(t), AutoPipelineGets: true})
	require.NoError(t, err)

	ids := make([]string, 64)
	for i := range ids {
		tok, err := store.NewToken("alice")
		require.NoError(t, err)
		ids[i], err = store.IDFromToken(tok)
		require.NoError(t, err)
		_, err = st.Create(ctx, &store.Session{ID: ids[i], UserID: "alice", ExpiresAt: time.Now().Add(time.Hour)}, store.CreateOptions{})
		require.NoError(t, err)
	}
	for _, c := range hook.take() {
		require.False(t, strings.HasPrefix(c, "pipeline(") && strings.Contains(c, "eval"), "a Create went through a pipeline: %s", c)
	}

	got, err := st.Get(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, ids[0], got.ID)
	// go-redis sends a lone command as it is, without a pipeline.
	require.Equal(t, []string{"get"}, hook.gets(), "a lone Get is one GET")

	// 64 at once: every one answered right, and they share pipelines. How
	// they group depends on scheduling, so a round where they did not meet
	// is tried again, a few times at most.
	batched := false
	for round := 0; round < 5 && !batched; round++ {
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, len(ids))
		for i, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				s, err := st.Get(ctx, id)
				if err == nil && s.ID != id {
					err = store.ErrInvalid
				}
				errs[i] = err
			}()
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "Get %d", i)
		}
		pipelines := hook.gets()
		for _, c := range pipelines {
			require.Regexp(t, `^(get|pipeline\(get(,get)*\))$`, c)
		}
		t.Logf("64 concurrent Gets rode %d pipelines: %v", len(pipelines), pipelines)
		batched = len(pipelines) < len(ids) && strings.Contains(strings.Join(pipelines, " "), "get,get")
	}
	require.True(t, batched, "concurrent Gets never shared a pipeline in 5 rounds")

	_, err = st.Get(ctx, "not an ID")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Empty(t, hook.gets(), "a malformed ID must not reach Redis")
}

// TestAutoPipelineGetsDeadline: a Get waiting in the pipeline ends with its
// ctx, as on the plain client, while Redis does not answer (CLIENT PAUSE);
// and once Redis answers again, Gets work without anything being reset.
func TestAutoPipelineGetsDeadline(t *testing.T) {
	ctx := context.Background()
	st, admin, id := pausableStore(t)
	const pause = 1500 * time.Millisecond
	require.NoError(t, admin.Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err())
	paused := time.Now()

	for range 3 {
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		began := time.Now()
		_, err := st.Get(cctx, id)
		took := time.Since(began)
		cancel()
		require.ErrorIs(t, err, store.ErrUnavailable)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Less(t, took, 600*time.Millisecond, "a Get outlived its 100 ms deadline by far")
	}
	require.Less(t, time.Since(paused), pause, "the pause ended before the Gets were tried; the test proved nothing")

	got, err := st.Get(ctx, id) // waits out the pause
	require.NoError(t, err)
	require.Equal(t, id, got.ID)
}

// TestAutoPipelineGetsBounded: while Redis does not answer, at most
// MaxQueuedGets Gets wait; the next ones fail at once as unavailable,
// instead of queueing memory behind callers that have given up.
func TestAutoPipelineGetsBounded(t *testing.T) {
	ctx := context.Background()
	st, admin, id := pausableStore(t)
	require.NoError(t, admin.Do(ctx, "CLIENT", "PAUSE", 3000, "ALL").Err())
	defer admin.Do(ctx, "CLIENT", "UNPAUSE")

	wctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	for range redis.MaxQueuedGets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = st.Get(wctx, id) // waits: Redis is paused
		}()
	}
	// Once the waiting Gets fill the queue, one more fails at once; until
	// then a probe waits too, and gives up after 50 ms.
	var full error
	for deadline := time.Now().Add(2 * time.Second); full == nil && time.Now().Before(deadline); {
		pctx, pcancel := context.WithTimeout(wctx, 50*time.Millisecond)
		_, err := st.Get(pctx, id)
		pcancel()
		if err != nil && !errorsIsCtx(err) {
			full = err
		}
	}
	require.Error(t, full, "no Get was refused with %d waiting", redis.MaxQueuedGets)
	require.ErrorIs(t, full, store.ErrUnavailable)
	require.ErrorIs(t, full, goredis.ErrAutoPipelineQueueFull)
	require.Contains(t, full.Error(), "Gets waiting for Redis")
	cancel()
	require.NoError(t, admin.Do(ctx, "CLIENT", "UNPAUSE").Err())
	wg.Wait()
}

func errorsIsCtx(err error) bool {
	return err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled))
}

// TestAutoPipelineGetsNeedsAClient: the option on a client that cannot
// auto-pipeline (a Ring) is refused by New with a clear error.
func TestAutoPipelineGetsNeedsAClient(t *testing.T) {
	srv := redistest.Standalone(t)
	ring := goredis.NewRing(&goredis.RingOptions{Addrs: map[string]string{"a": srv.Options().Addr}})
	defer ring.Close()
	_, err := redis.New(ring, redis.Options{AutoPipelineGets: true})
	require.ErrorContains(t, err, "AutoPipelineGets on *redis.Ring")
}

// pipelineHook records commands by name, and pipelines as
// "pipeline(name,name,...)".
type pipelineHook struct{ countHook }

func (h *pipelineHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		h.mu.Lock()
		h.cmds = append(h.cmds, "pipeline("+strings.Join(names, ",")+")")
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// gets is take without what go-redis sends to set up a new connection of
// its pipeline pool (HELLO, then CLIENT SETINFO in a pipeline).
func (h *pipelineHook) gets() []string {
	var out []string
	for _, c := range h.take() {
		if c != "hello" && !strings.HasPrefix(c, "pipeline(client") {
			out = append(out, c)
		}
	}
	return out
}

// pausableStore returns a store with AutoPipelineGets on a redis-server of
// the test's own (never a shared REDIS_URL: the tests pause it with CLIENT
// PAUSE), a second client to send that pause, and a live session's ID.
func pausableStore(t *testing.T) (*redis.Store, *goredis.Client, string) {
	t.Helper()
	srv := redistest.StartServer(t)
	st, err := redis.New(srv.Client(t), redis.Options{KeyPrefix: srv.Prefix(t), AutoPipelineGets: true})
	require.NoError(t, err)
	tok, err := store.NewToken("alice")
	require.NoError(t, err)
	id, err := store.IDFromToken(tok)
	require.NoError(t, err)
	_, err = st.Create(context.Background(), &store.Session{ID: id, UserID: "alice", ExpiresAt: time.Now().Add(time.Hour)}, store.CreateOptions{})
	require.NoError(t, err)
	return st, srv.Client(t), id
}
