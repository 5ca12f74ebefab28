package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
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
	// The auto-pipeliner sends even a lone command on the client's
	// pipeline pool (the hook sees it as a plain command): no write may
	// have used that pool.
	pipelinePoolUse := func() uint32 {
		ps := client.PoolStats().PipelineStats
		require.NotNil(t, ps, "the client has no pipeline pool")
		return ps.Hits + ps.Misses
	}
	require.Zero(t, pipelinePoolUse(), "a write used the auto-pipeliner's connections")

	got, err := st.Get(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, ids[0], got.ID)
	require.NotZero(t, pipelinePoolUse(), "a Get did not use the auto-pipeliner")
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

// TestAutoPipelineGetsClientClosed: closing the client while Gets wait in
// the pipeline answers them (accepted Gets are sent before the client's
// pools close), and a Get after Close fails as unavailable, wrapping
// go-redis's ErrClosed, never as "not found".
func TestAutoPipelineGetsClientClosed(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t)
	client := srv.Client(t)
	st, err := redis.New(client, redis.Options{KeyPrefix: srv.Prefix(t), AutoPipelineGets: true})
	require.NoError(t, err)
	id := pipelineSession(t, st)
	require.NoError(t, srv.Client(t).Do(ctx, "CLIENT", "PAUSE", 500, "ALL").Err())

	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var s *store.Session
			s, errs[i] = st.Get(wctx, id)
			if errs[i] == nil && s.ID != id {
				errs[i] = store.ErrInvalid
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // lets most of them queue; either way the outcome below holds
	require.NoError(t, client.Close())
	wg.Wait()
	for i, err := range errs {
		// Queued before Close: answered. Too late: refused as closed.
		if err != nil {
			require.ErrorIs(t, err, store.ErrUnavailable, "Get %d", i)
			require.ErrorIs(t, err, goredis.ErrClosed, "Get %d", i)
		}
	}
	require.NoError(t, wctx.Err(), "a Get waited for its ctx after Close")

	_, err = st.Get(ctx, id)
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.ErrorIs(t, err, goredis.ErrClosed)
}

// TestAutoPipelineGetsForeignPipeliner: go-redis keeps one deferred
// pipeliner per client and its first user's options win. New refuses a
// client whose pipeliner lacks the queue bound, with a clear error, and
// leaves that pipeliner as it was; two stores on one client share theirs.
func TestAutoPipelineGetsForeignPipeliner(t *testing.T) {
	srv := redistest.StartServer(t)

	own := srv.Client(t)
	_, err := redis.New(own, redis.Options{AutoPipelineGets: true})
	require.NoError(t, err)
	_, err = redis.New(own, redis.Options{AutoPipelineGets: true})
	require.NoError(t, err, "a second store on the same client")

	foreign := srv.Client(t)
	ap, err := foreign.AsyncAutoPipeline() // go-redis's defaults: no queue bound
	require.NoError(t, err)
	_, err = redis.New(foreign, redis.Options{AutoPipelineGets: true})
	require.ErrorContains(t, err, "auto-pipeliner was made with other options")
	require.ErrorContains(t, err, "MaxQueuedCommands 0")
	require.Zero(t, ap.Config().MaxQueuedCommands, "New changed the client's pipeliner")
	require.False(t, ap.IsClosed(), "New closed the client's pipeliner")
	_, err = redis.New(foreign, redis.Options{})
	require.NoError(t, err, "without AutoPipelineGets the client is fine")
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
	return st, srv.Client(t), pipelineSession(t, st)
}

// pipelineSession creates a session of alice's and returns its ID.
func pipelineSession(t *testing.T, st *redis.Store) string {
	t.Helper()
	tok, err := store.NewToken("alice")
	require.NoError(t, err)
	id, err := store.IDFromToken(tok)
	require.NoError(t, err)
	_, err = st.Create(context.Background(), &store.Session{ID: id, UserID: "alice", ExpiresAt: time.Now().Add(time.Hour)}, store.CreateOptions{})
	require.NoError(t, err)
	return id
}

// TestAutoPipelineGetsSentinelFailover: on a Sentinel failover client the
// batched Gets follow the master: after the master dies and its replica is
// promoted, they reach the new master (go-redis drops the pipeline pool's
// connections to the old one) and find the session there.
func TestAutoPipelineGetsSentinelFailover(t *testing.T) {
	ctx := context.Background()
	sen := redistest.StartSentinel(t)
	client := sen.Client(t)
	st, err := redis.New(client, redis.Options{AutoPipelineGets: true})
	require.NoError(t, err)
	id := pipelineSession(t, st)
	_, err = st.Get(ctx, id)
	require.NoError(t, err, "before the failover")
	acked, err := client.Wait(ctx, 1, time.Second).Result()
	require.NoError(t, err)
	require.EqualValues(t, 1, acked, "the replica must have the session before the master dies")

	require.NoError(t, sen.Master.Kill())
	deadline := time.Now().Add(20 * time.Second)
	for {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		got, err := st.Get(gctx, id)
		cancel()
		if err == nil {
			require.Equal(t, id, got.ID)
			break
		}
		require.ErrorIs(t, err, store.ErrUnavailable, "while the master is down: unavailable, never not found")
		require.True(t, time.Now().Before(deadline), "no Get answered within 20s of the master's death: %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	role, err := sen.Replica.Client(t).Do(ctx, "ROLE").Slice()
	require.NoError(t, err)
	require.Equal(t, "master", role[0], "the Get was answered by the promoted replica")
}

// TestAutoPipelineGetsClusterRedirects: on a cluster whose slot map the
// client has not reloaded, batched Gets follow MOVED (the slot has moved)
// and ASK (the slot is moving and the key has gone) to the node that has
// the session, as plain Gets do.
func TestAutoPipelineGetsClusterRedirects(t *testing.T) {
	ctx := context.Background()
	cl := redistest.StartCluster(t)
	client := cl.Client(t)
	st, err := redis.New(client, redis.Options{AutoPipelineGets: true})
	require.NoError(t, err)
	src, dst := cl.Nodes[0], cl.Nodes[1]
	moved, asked := twoSlotsOn(t, client, src.Addr(), "redirect") // users on src, in two different slots
	movedSess, askedSess := waitSession(t, st, moved), waitSession(t, st, asked)

	slot := slotOf(t, client, moved)
	startMigration(t, cl, slot, src, dst)
	finishMigration(t, cl, slot, dst)
	require.Equal(t, src.Addr(), masterOf(t, client, moved), "the client must still map the slot to src")
	got, err := st.Get(ctx, movedSess.ID)
	require.NoError(t, err, "Get after MOVED")
	require.Equal(t, movedSess.ID, got.ID)

	slot = slotOf(t, client, asked)
	startMigration(t, cl, slot, src, dst)
	got, err = st.Get(ctx, askedSess.ID)
	require.NoError(t, err, "Get after ASK")
	require.Equal(t, askedSess.ID, got.ID)
}

// TestAutoPipelineGetsClusterMasterStalled: on a cluster, a master that
// stops answering (SIGSTOP) holds up only its own users' Gets; another
// master's users, even in neighbouring slots, are served at once. The two
// users are picked in adjacent slot ranges of two masters (slots 5120-5460
// and 5461-6143 with redis-cli's layout), which a pipeliner shared by the
// whole cluster queues together for every GOMAXPROCS from 2 to 16.
func TestAutoPipelineGetsClusterMasterStalled(t *testing.T) {
	ctx := context.Background()
	cl := redistest.StartCluster(t)
	client := cl.Client(t)
	st, err := redis.New(client, redis.Options{AutoPipelineGets: true})
	require.NoError(t, err)

	// stalled: a user of the master of slot 5460; live: a user of another
	// master, in the slots just after it.
	stalledMaster := ""
	var stalledUser, liveUser string
	for u := 0; stalledUser == "" || liveUser == ""; u++ {
		require.Less(t, u, 100_000, "no users in the slots around 5460")
		uid := fmt.Sprintf("stall-%d", u)
		switch slot := slotOf(t, client, uid); {
		case slot >= 5120 && slot <= 5460 && stalledUser == "":
			stalledUser, stalledMaster = uid, masterOf(t, client, uid)
		case slot >= 5461 && slot <= 6143 && liveUser == "":
			liveUser = uid
		}
	}
	require.NotEqual(t, stalledMaster, masterOf(t, client, liveUser), "the two users must be on two masters")
	stalledSess, liveSess := waitSession(t, st, stalledUser), waitSession(t, st, liveUser)
	// Warm both masters' pipelines.
	for _, id := range []string{stalledSess.ID, liveSess.ID} {
		_, err := st.Get(ctx, id)
		require.NoError(t, err)
	}

	var frozen *redistest.Server
	for _, n := range cl.Nodes {
		if n.Addr() == stalledMaster {
			frozen = n
		}
	}
	require.NotNil(t, frozen)
	require.NoError(t, syscall.Kill(frozen.PID(), syscall.SIGSTOP))
	t.Cleanup(func() { _ = syscall.Kill(frozen.PID(), syscall.SIGCONT) })

	// Gets of the stalled master's user wait in its pipeline...
	var wg sync.WaitGroup
	stalledErrs := make([]error, 8)
	for i := range stalledErrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, stalledErrs[i] = st.Get(cctx, stalledSess.ID)
		}()
	}
	time.Sleep(100 * time.Millisecond) // let them queue
	// ...while the other master's user is served at once.
	for range 10 {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		began := time.Now()
		got, err := st.Get(cctx, liveSess.ID)
		took := time.Since(began)
		cancel()
		require.NoError(t, err, "a Get of another master's user, with a master stalled")
		require.Equal(t, liveSess.ID, got.ID)
		require.Less(t, took, 500*time.Millisecond, "a Get of another master's user waited behind the stalled master")
	}
	wg.Wait()
	for i, err := range stalledErrs {
		require.ErrorIs(t, err, store.ErrUnavailable, "Get %d of the stalled master's user", i)
	}
}
