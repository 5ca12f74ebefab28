package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/redis"
	"github.com/sessiond/sessiond/store/storetest"
)

// backend is a store together with raw access to its keys.
type backend struct {
	s      *redis.Store
	client goredis.UniversalClient
	prefix string
	clk    *storetest.Clock
}

// backends returns the kinds of Redis a behaviour is checked on; fn runs
// once per kind in a subtest named after it.
func eachBackend(t *testing.T, fn func(t *testing.T, b *backend)) {
	t.Run("Miniredis", func(t *testing.T) {
		client := goredis.NewClient(&goredis.Options{Addr: miniredis.RunT(t).Addr()})
		t.Cleanup(func() { _ = client.Close() })
		fn(t, newBackend(t, client, redistest.Prefix(t)))
	})
	t.Run("Standalone", func(t *testing.T) {
		srv := redistest.Standalone(t)
		fn(t, newBackend(t, srv.Client(t), srv.Prefix(t)))
	})
}

func newBackend(t *testing.T, client goredis.UniversalClient, prefix string) *backend {
	t.Helper()
	b := &backend{client: client, prefix: prefix, clk: storetest.NewClock(time.Now())}
	s, err := redis.New(client, redis.Options{KeyPrefix: b.prefix, Now: b.clk.Now})
	require.NoError(t, err)
	b.s = s
	return b
}

// keys returns every key under the backend's prefix, sorted, on every
// master of a cluster.
func (b *backend) keys(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var (
		mu  sync.Mutex
		all []string
	)
	scan := func(ctx context.Context, c goredis.UniversalClient) error {
		keys, err := scanAll(ctx, c, b.prefix+"*")
		mu.Lock()
		all = append(all, keys...)
		mu.Unlock()
		return err
	}
	if cc, ok := b.client.(*goredis.ClusterClient); ok {
		require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return scan(ctx, c) }))
	} else {
		require.NoError(t, scan(ctx, b.client))
	}
	slices.Sort(all)
	return all
}

func scanAll(ctx context.Context, c goredis.UniversalClient, match string) ([]string, error) {
	var out []string
	var cursor uint64
	for range 10000 {
		keys, next, err := c.Scan(ctx, cursor, match, 1000).Result()
		if err != nil {
			return nil, err
		}
		out = append(out, keys...)
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
	return nil, fmt.Errorf("SCAN did not finish")
}

// snapshot returns every key under the prefix with its contents, to prove
// that a call changed nothing. (miniredis has no DUMP of sorted sets.)
func (b *backend) snapshot(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	snap := map[string]string{}
	for _, k := range b.keys(t) {
		typ, err := b.client.Type(ctx, k).Result()
		require.NoError(t, err)
		switch typ {
		case "string":
			snap[k], err = b.client.Get(ctx, k).Result()
		case "zset":
			var z []goredis.Z
			z, err = b.client.ZRangeWithScores(ctx, k, 0, -1).Result()
			snap[k] = fmt.Sprint(z)
		default:
			t.Fatalf("key %s has unexpected type %s", k, typ)
		}
		require.NoError(t, err)
	}
	return snap
}

func (b *backend) session(t *testing.T, userID string, ttl time.Duration) *store.Session {
	t.Helper()
	token, err := store.NewToken(userID)
	require.NoError(t, err)
	id, err := store.IDFromToken(token)
	require.NoError(t, err)
	return &store.Session{ID: id, UserID: userID, User: json.RawMessage(`{"id":"` + userID + `"}`), ExpiresAt: b.clk.Now().Add(ttl)}
}

func (b *backend) create(t *testing.T, userID string, ttl time.Duration) *store.Session {
	t.Helper()
	s := b.session(t, userID, ttl)
	_, err := b.s.Create(context.Background(), s, store.CreateOptions{})
	require.NoError(t, err)
	return s
}

func TestRejectedCreateWritesNothing(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		bad := map[string]func(s *store.Session){
			"EmptyUserID":  func(s *store.Session) { s.UserID = "" },
			"BadJSON":      func(s *store.Session) { s.User = json.RawMessage(`{"a":`) },
			"TooLarge":     func(s *store.Session) { s.User = json.RawMessage(`"` + strings.Repeat("x", store.MaxUserSize) + `"`) },
			"MalformedID":  func(s *store.Session) { s.ID = s.ID[:10] },
			"OtherUsersID": func(s *store.Session) { s.UserID = "bob" },
			"Expired":      func(s *store.Session) { s.ExpiresAt = b.clk.Now().Add(-time.Second) },
		}
		for name, spoil := range bad {
			s := b.session(t, "alice", time.Hour)
			spoil(s)
			_, err := b.s.Create(ctx, s, store.CreateOptions{MaxPerUser: 1})
			require.Error(t, err, "Create(%s)", name)
			require.Empty(t, b.keys(t), "Create(%s) left keys behind", name)
		}
		_, err := b.s.Create(ctx, b.session(t, "alice", time.Hour), store.CreateOptions{OnLimit: store.LimitPolicy(7)})
		require.ErrorIs(t, err, store.ErrInvalid, "unknown limit policy")
		require.Empty(t, b.keys(t))

		// Refused and duplicate Creates leave every key byte-for-byte as
		// it was, TTLs aside.
		first := b.create(t, "alice", time.Hour)
		before := b.snapshot(t)
		require.Len(t, before, 3, "session, index and creation counter: %v", b.keys(t))
		_, err = b.s.Create(ctx, b.session(t, "alice", time.Hour), store.CreateOptions{MaxPerUser: 1, OnLimit: store.Refuse})
		require.ErrorIs(t, err, store.ErrTooManySessions)
		require.Equal(t, before, b.snapshot(t), "a refused Create changed keys")
		dup := b.session(t, "alice", 2*time.Hour)
		dup.ID = first.ID
		_, err = b.s.Create(ctx, dup, store.CreateOptions{})
		require.ErrorIs(t, err, store.ErrExists)
		require.Equal(t, before, b.snapshot(t), "a duplicate Create changed keys")
	})
}

// countHook counts the round trips a client makes: one per command, one
// per pipeline.
type countHook struct {
	mu   sync.Mutex
	cmds []string
}

func (h *countHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (h *countHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		h.mu.Lock()
		h.cmds = append(h.cmds, cmd.Name())
		h.mu.Unlock()
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		h.mu.Lock()
		h.cmds = append(h.cmds, fmt.Sprintf("pipeline(%d)", len(cmds)))
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

func (h *countHook) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.cmds
	h.cmds = nil
	return c
}

func TestRoundTrips(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Standalone(t)
	client := srv.Client(t)
	hook := &countHook{}
	client.AddHook(hook)
	b := newBackend(t, client, srv.Prefix(t))
	s := b.create(t, "alice", time.Hour)
	// Warm the script cache: a first Run may need EVALSHA, then EVAL.
	_, err := b.s.List(ctx, "alice")
	require.NoError(t, err)
	_, err = b.s.Touch(ctx, s.ID, b.clk.Now(), s.ExpiresAt)
	require.NoError(t, err)
	hook.take()

	_, err = b.s.Get(ctx, s.ID)
	require.NoError(t, err)
	require.Equal(t, []string{"get"}, hook.take(), "Get of a live session")
	_, err = b.s.Get(ctx, b.session(t, "alice", time.Hour).ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Equal(t, []string{"get"}, hook.take(), "Get of an unknown session")
	_, err = b.s.Get(ctx, "not an ID")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Empty(t, hook.take(), "Get of a malformed ID must not reach Redis")

	_, err = b.s.List(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, []string{"evalsha"}, hook.take(), "List")
	_, err = b.s.Count(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, []string{"zcount"}, hook.take(), "Count")
	_, err = b.s.Touch(ctx, s.ID, b.clk.Now(), s.ExpiresAt.Add(time.Hour))
	require.NoError(t, err)
	require.Equal(t, []string{"evalsha"}, hook.take(), "Touch")

	noUser := b.session(t, "alice", time.Hour)
	noUser.UserID = ""
	_, err = b.s.Create(ctx, noUser, store.CreateOptions{})
	require.ErrorIs(t, err, store.ErrInvalid)
	_, err = b.s.Touch(ctx, s.ID, b.clk.Now(), b.clk.Now())
	require.ErrorIs(t, err, store.ErrInvalid)
	_, err = b.s.UpdateUser(ctx, "alice", json.RawMessage(`{`))
	require.ErrorIs(t, err, store.ErrInvalid)
	require.Empty(t, hook.take(), "rejected input must not reach Redis")
}

func TestKeysExpireByTTL(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Standalone(t)
	client := srv.Client(t)
	prefix := srv.Prefix(t)
	s, err := redis.New(client, redis.Options{KeyPrefix: prefix}) // the real clock
	require.NoError(t, err)
	const ttl = 300 * time.Millisecond
	sess := &store.Session{UserID: "alice", ExpiresAt: time.Now().Add(ttl)}
	token, err := store.NewToken("alice")
	require.NoError(t, err)
	sess.ID, err = store.IDFromToken(token)
	require.NoError(t, err)
	_, err = s.Create(ctx, sess, store.CreateOptions{})
	require.NoError(t, err)

	b := &backend{client: client, prefix: prefix}
	keys := b.keys(t)
	require.Len(t, keys, 3)
	for _, k := range keys {
		pttl, err := client.PTTL(ctx, k).Result()
		require.NoError(t, err)
		require.True(t, pttl > 0 && pttl <= ttl, "PTTL %s = %v, want in (0, %v]", k, pttl, ttl)
	}
	time.Sleep(time.Until(sess.ExpiresAt) + 100*time.Millisecond)
	require.Empty(t, b.keys(t), "Redis must drop the session and its index by TTL alone")
}

func TestIndexTTLAndPruning(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		short := b.create(t, "alice", time.Hour)
		long := b.create(t, "alice", 2*time.Hour)
		idx := b.prefix + "user:{" + store.UserTag("alice") + "}:alice"
		pttl := func() time.Duration {
			d, err := b.client.PTTL(ctx, idx).Result()
			require.NoError(t, err)
			return d
		}
		require.InDelta(t, 2*time.Hour, pttl(), float64(time.Minute), "index TTL follows the longest-lived session")

		// Shortening the longest session shortens the index.
		_, err := b.s.Touch(ctx, long.ID, b.clk.Now(), b.clk.Now().Add(90*time.Minute))
		require.NoError(t, err)
		require.InDelta(t, 90*time.Minute, pttl(), float64(time.Minute))

		// Past the short session's expiry (by the store's clock; the
		// server has not expired anything yet) the next script prunes it
		// and its key.
		b.clk.Set(short.ExpiresAt)
		members, err := b.client.ZRange(ctx, idx, 0, -1).Result()
		require.NoError(t, err)
		require.ElementsMatch(t, []string{short.ID, long.ID}, members)
		n, err := b.s.Count(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, 1, n, "Count ignores expired members")
		list, err := b.s.List(ctx, "alice")
		require.NoError(t, err)
		require.Len(t, list, 1)
		members, err = b.client.ZRange(ctx, idx, 0, -1).Result()
		require.NoError(t, err)
		require.Equal(t, []string{long.ID}, members, "List prunes the expired member")
		require.NotContains(t, b.keys(t), b.prefix+"session:{"+short.ID[:4]+"}"+short.ID[4:], "pruning deletes the session key")

		// A member whose key vanished (evicted, deleted by hand) is
		// dropped too.
		require.NoError(t, b.client.Del(ctx, b.prefix+"session:{"+long.ID[:4]+"}"+long.ID[4:]).Err())
		list, err = b.s.List(ctx, "alice")
		require.NoError(t, err)
		require.Empty(t, list)
		require.NotContains(t, b.keys(t), idx, "an index without members is gone")
	})
}

func TestKeyPrefix(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	client := goredis.NewClient(&goredis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = client.Close() })

	for _, bad := range []string{"app{1}:", "{", "x}"} {
		_, err := redis.New(client, redis.Options{KeyPrefix: bad})
		require.Error(t, err, "New(KeyPrefix %q)", bad)
	}
	_, err := redis.New(nil, redis.Options{})
	require.Error(t, err, "New(nil client)")

	for _, prefix := range []string{"", "app1:"} {
		s, err := redis.New(client, redis.Options{KeyPrefix: prefix})
		require.NoError(t, err)
		b := &backend{s: s, client: client, clk: storetest.NewClock(time.Now())}
		sess := b.create(t, "alice", time.Hour)
		_, err = s.Touch(ctx, sess.ID, time.Now(), time.Now().Add(2*time.Hour))
		require.NoError(t, err)
		_, err = s.UpdateUser(ctx, "alice", json.RawMessage(`{}`))
		require.NoError(t, err)
		_, err = s.List(ctx, "alice")
		require.NoError(t, err)
		want := prefix
		if want == "" {
			want = redis.DefaultKeyPrefix
		}
		keys := m.Keys()
		require.Len(t, keys, 3)
		for _, k := range keys {
			require.True(t, strings.HasPrefix(k, want), "key %q outside prefix %q", k, want)
		}
		n, err := s.DeleteUser(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, 1, n)
		m.FlushAll()
	}
}

// bigUser is JSON that a decode/encode round trip through cjson or
// encoding/json into any would change: numbers beyond float64, key order,
// escapes, whitespace.
const bigUser = `{ "z": 123456789012345678901234567890, "a": 1.10, "id":"alice",` +
	` "esc":"\u00e9\/", "n": -0.0e0 }`

func TestUserJSONVerbatim(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ctx := context.Background()
		s := b.session(t, "alice", time.Hour)
		s.User = json.RawMessage(bigUser)
		_, err := b.s.Create(ctx, s, store.CreateOptions{})
		require.NoError(t, err)
		requireUser := func(want string) {
			t.Helper()
			got, err := b.s.Get(ctx, s.ID)
			require.NoError(t, err)
			require.Equal(t, want, string(got.User))
			list, err := b.s.List(ctx, "alice")
			require.NoError(t, err)
			require.Len(t, list, 1)
			require.Equal(t, want, string(list[0].User))
		}
		requireUser(bigUser)
		touched, err := b.s.Touch(ctx, s.ID, b.clk.Now(), s.ExpiresAt.Add(time.Hour))
		require.NoError(t, err)
		require.Equal(t, bigUser, string(touched.User))
		requireUser(bigUser)

		updated := `[9007199254740993, {"b":1,"a":2}]`
		n, err := b.s.UpdateUser(ctx, "alice", json.RawMessage(updated))
		require.NoError(t, err)
		require.Equal(t, 1, n)
		requireUser(updated)
		_, err = b.s.Touch(ctx, s.ID, b.clk.Now(), s.ExpiresAt)
		require.NoError(t, err)
		requireUser(updated)
	})
}

// TestClusterSlots checks on a real cluster that each user's keys share a
// slot, that users spread over every master, and that every method works
// on all of them (no CROSSSLOT, no MOVED left unhandled).
func TestClusterSlots(t *testing.T) {
	ctx := context.Background()
	c := redistest.SharedCluster(t)
	b := newBackend(t, c.Client(t), redistest.Prefix(t))
	const users = 24
	for i := range users {
		userID := fmt.Sprintf("user-%d", i)
		s1 := b.create(t, userID, time.Hour)
		s2 := b.session(t, userID, 2*time.Hour)
		evicted, err := b.s.Create(ctx, s2, store.CreateOptions{MaxPerUser: 1})
		require.NoError(t, err)
		require.Equal(t, []string{s1.ID}, evicted)
		_, err = b.s.Touch(ctx, s2.ID, b.clk.Now(), s2.ExpiresAt.Add(time.Hour))
		require.NoError(t, err)
		n, err := b.s.UpdateUser(ctx, userID, json.RawMessage(`{"v":2}`))
		require.NoError(t, err)
		require.Equal(t, 1, n)
		list, err := b.s.List(ctx, userID)
		require.NoError(t, err)
		require.Len(t, list, 1)
		n, err = b.s.Count(ctx, userID)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		s3 := b.create(t, userID, time.Hour)
		require.NoError(t, b.s.Delete(ctx, s3.ID))
	}

	// Every user's keys hash to one slot; the users cover every master.
	slots := map[string]map[int64]bool{} // tag -> slots of its keys
	for _, k := range b.keys(t) {
		slot, err := b.client.ClusterKeySlot(ctx, k).Result()
		require.NoError(t, err)
		open := strings.IndexByte(k, '{')
		require.Positive(t, open, "key %q has no hash tag", k)
		tag := k[open : open+6]
		if slots[tag] == nil {
			slots[tag] = map[int64]bool{}
		}
		slots[tag][slot] = true
	}
	require.NotEmpty(t, slots)
	for tag, s := range slots {
		require.Len(t, s, 1, "keys of tag %s span slots %v", tag, s)
	}
	var nodes atomic.Int32
	cc := b.client.(*goredis.ClusterClient)
	require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error {
		keys, err := scanAll(ctx, m, b.prefix+"*")
		if len(keys) > 0 {
			nodes.Add(1)
		}
		return err
	}))
	require.EqualValues(t, 3, nodes.Load(), "%d users should land on all 3 masters", users)

	for i := range users {
		n, err := b.s.DeleteUser(ctx, fmt.Sprintf("user-%d", i))
		require.NoError(t, err)
		require.Equal(t, 1, n)
	}
	for _, k := range b.keys(t) {
		require.Contains(t, k, ":seq:{", "only creation counters may remain after DeleteUser")
	}
}

func TestCheckConfig(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t)
	client := failFast(t, srv)
	s, err := redis.New(client, redis.Options{})
	require.NoError(t, err)
	for policy, bad := range map[string]bool{
		"noeviction": false, "volatile-lru": false, "volatile-ttl": false,
		"allkeys-lru": true, "allkeys-random": true,
	} {
		require.NoError(t, client.ConfigSet(ctx, "maxmemory-policy", policy).Err())
		err := s.CheckConfig(ctx)
		if bad {
			require.ErrorIs(t, err, redis.ErrEvictionPolicy, "CheckConfig with %s", policy)
		} else {
			require.NoError(t, err, "CheckConfig with %s", policy)
		}
	}

	t.Run("ConfigDisabled", func(t *testing.T) {
		srv := redistest.StartServer(t, "--maxmemory-policy", "allkeys-lru", "--rename-command", "CONFIG", "")
		s, err := redis.New(srv.Client(t), redis.Options{})
		require.NoError(t, err)
		require.NoError(t, s.CheckConfig(ctx), "unknown policy is not a failure")
	})

	t.Run("Cluster", func(t *testing.T) {
		s, err := redis.New(redistest.SharedCluster(t).Client(t), redis.Options{})
		require.NoError(t, err)
		require.NoError(t, s.CheckConfig(ctx))
	})

	t.Run("Unreachable", func(t *testing.T) {
		require.NoError(t, srv.Kill())
		err := s.CheckConfig(ctx)
		require.ErrorIs(t, err, store.ErrUnavailable)
	})
}

// TestUnavailable: a server that is down is never mistaken for "no such
// session".
func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t)
	b := newBackend(t, failFast(t, srv), srv.Prefix(t))
	s := b.create(t, "alice", time.Hour)
	require.NoError(t, srv.Kill())

	_, err := b.s.Get(ctx, s.ID)
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.NotErrorIs(t, err, store.ErrNotFound)
	require.NotContains(t, err.Error(), s.ID[store.TagLen:], "errors must not carry more than needed")
	_, err = b.s.Touch(ctx, s.ID, b.clk.Now(), s.ExpiresAt)
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = b.s.Create(ctx, b.session(t, "alice", time.Hour), store.CreateOptions{})
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = b.s.List(ctx, "alice")
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = b.s.Count(ctx, "alice")
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = b.s.DeleteUser(ctx, "alice")
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = b.s.UpdateUser(ctx, "alice", nil)
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.ErrorIs(t, b.s.Delete(ctx, s.ID), store.ErrUnavailable)

	// Back up, with the data gone (no persistence): a clean not-found.
	require.NoError(t, srv.Start())
	_, err = b.s.Get(ctx, s.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// failFast returns a client of srv that gives up at once when srv is down.
func failFast(t *testing.T, srv *redistest.Server) *goredis.Client {
	t.Helper()
	opts := srv.Options()
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	client := goredis.NewClient(opts)
	t.Cleanup(func() { _ = client.Close() })
	return client
}

// A Redis at maxmemory with noeviction refuses writes: Create fails with
// ErrFull (and ErrUnavailable) and stores nothing, while Get and Delete of
// an existing session still work.
func TestFullServer(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t, "--maxmemory-policy", "noeviction")
	client := failFast(t, srv)
	s, err := redis.New(client, redis.Options{})
	require.NoError(t, err)
	kept := waitSession(t, s, "full-user")

	require.NoError(t, client.ConfigSet(ctx, "maxmemory", "1").Err())
	token, err := store.NewToken("full-user")
	require.NoError(t, err)
	id, err := store.IDFromToken(token)
	require.NoError(t, err)
	refused := &store.Session{ID: id, UserID: "full-user", ExpiresAt: time.Now().Add(time.Hour)}
	_, err = s.Create(ctx, refused, store.CreateOptions{})
	require.ErrorIs(t, err, store.ErrFull)
	require.ErrorIs(t, err, store.ErrUnavailable)
	_, err = s.Get(ctx, refused.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "a refused Create stores nothing")

	got, err := s.Get(ctx, kept.ID)
	require.NoError(t, err, "reads work while full")
	require.Equal(t, kept.ID, got.ID)
	require.NoError(t, s.Delete(ctx, kept.ID), "deletes work while full")
	_, err = s.Get(ctx, kept.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
}
