package nearcache_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/nearcache"
	"github.com/sessiond/sessiond/store/redis"
	"github.com/sessiond/sessiond/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is one miniredis and a clock shared by every instance of a test.
type env struct {
	mr    *miniredis.Miniredis
	clock *storetest.Clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return &env{mr: miniredis.RunT(t), clock: storetest.NewClock(time.Now())}
}

func (e *env) client(t *testing.T) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: e.mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// backend is a Redis store on its own client, without a cache: a writer
// that publishes nothing.
func (e *env) backend(t *testing.T) *redis.Store {
	t.Helper()
	st, err := redis.New(e.client(t), redis.Options{Now: e.clock.Now})
	require.NoError(t, err)
	return st
}

// instance is one process's cache in front of the shared Redis, ready.
func (e *env) instance(t *testing.T, opts nearcache.Options) *nearcache.Cache {
	t.Helper()
	c := e.client(t)
	st, err := redis.New(c, redis.Options{Now: e.clock.Now})
	require.NoError(t, err)
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	opts.Logger = quiet
	nc, err := nearcache.New(st, c, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, nc.WaitReady(ctx))
	return nc
}

func (e *env) create(t *testing.T, st store.Store, userID string, ttl time.Duration) string {
	t.Helper()
	token, err := store.NewToken(userID)
	require.NoError(t, err)
	id, err := store.IDFromToken(token)
	require.NoError(t, err)
	_, err = st.Create(context.Background(), &store.Session{
		ID: id, UserID: userID, User: []byte(`{"name":"A"}`), ExpiresAt: e.clock.Now().Add(ttl),
	}, store.CreateOptions{})
	require.NoError(t, err)
	return id
}

// eventually polls cond every millisecond for at most 2 s.
func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		mr := miniredis.RunT(t)
		c := goredis.NewClient(&goredis.Options{Addr: mr.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		st, err := redis.New(c, redis.Options{Now: now})
		require.NoError(t, err)
		nc, err := nearcache.New(st, c, nearcache.Options{Now: now, Logger: quiet})
		require.NoError(t, err)
		t.Cleanup(func() { _ = nc.Close() })
		require.NoError(t, nc.WaitReady(context.Background()))
		return nc
	})
}

func TestNewRejectsBadInput(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	st := e.backend(t)
	for _, tc := range []struct {
		name string
		st   store.Store
		c    goredis.UniversalClient
		opts nearcache.Options
	}{
		{"nil store", nil, c, nearcache.Options{}},
		{"nil client", st, nil, nearcache.Options{}},
		{"negative TTL", st, c, nearcache.Options{TTL: -time.Second}},
		{"negative MaxEntries", st, c, nearcache.Options{MaxEntries: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := nearcache.New(tc.st, tc.c, tc.opts)
			require.Error(t, err)
			require.Nil(t, nc)
		})
	}
}

// A hit is served from memory: a change made behind the cache's back is
// not seen until the entry's TTL runs out, and then it is.
func TestHitServedUntilTTL(t *testing.T) {
	e := newEnv(t)
	nc := e.instance(t, nearcache.Options{TTL: 5 * time.Second})
	id := e.create(t, nc, "alice", time.Hour)
	ctx := context.Background()

	_, err := nc.Get(ctx, id)
	require.NoError(t, err)
	require.NoError(t, e.backend(t).Delete(ctx, id)) // publishes nothing

	e.clock.Advance(4 * time.Second)
	s, err := nc.Get(ctx, id)
	require.NoError(t, err, "within the TTL the cached copy is served")
	require.Equal(t, id, s.ID)
	require.Equal(t, uint64(1), nc.Stats().Hits)

	e.clock.Advance(time.Second)
	_, err = nc.Get(ctx, id)
	require.ErrorIs(t, err, store.ErrNotFound, "past the TTL the backend decides")
}

// The caller's copy is its own: changing it does not change the cache.
func TestHitReturnsACopy(t *testing.T) {
	e := newEnv(t)
	nc := e.instance(t, nearcache.Options{})
	id := e.create(t, nc, "alice", time.Hour)
	ctx := context.Background()
	s, err := nc.Get(ctx, id)
	require.NoError(t, err)
	s.UserID = "mallory"
	s2, err := nc.Get(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "alice", s2.UserID)
}

func TestNeverPastExpiresAt(t *testing.T) {
	e := newEnv(t)
	nc := e.instance(t, nearcache.Options{TTL: time.Minute})
	id := e.create(t, nc, "alice", 2*time.Second)
	ctx := context.Background()
	_, err := nc.Get(ctx, id)
	require.NoError(t, err)
	e.clock.Advance(2 * time.Second)
	_, err = nc.Get(ctx, id)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Zero(t, nc.Stats().Hits)
}

// Every write through one instance reaches the others' caches through
// pub/sub, long before any TTL (the clock does not move).
func TestInvalidationAcrossInstances(t *testing.T) {
	e := newEnv(t)
	a := e.instance(t, nearcache.Options{})
	b := e.instance(t, nearcache.Options{})
	ctx := context.Background()

	warm := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			_, err := b.Get(ctx, id)
			require.NoError(t, err)
			_, err = b.Get(ctx, id)
			require.NoError(t, err)
		}
	}
	gone := func(id string) func() bool {
		return func() bool { _, err := b.Get(ctx, id); return err != nil }
	}

	t.Run("Delete", func(t *testing.T) {
		id := e.create(t, a, "u1", time.Hour)
		warm(id)
		require.NoError(t, a.Delete(ctx, id))
		eventually(t, gone(id), "revoked session still served by the other instance")
	})
	t.Run("DeleteUser", func(t *testing.T) {
		id1, id2 := e.create(t, a, "u2", time.Hour), e.create(t, a, "u2", time.Hour)
		other := e.create(t, a, "u3", time.Hour)
		warm(id1, id2, other)
		n, err := a.DeleteUser(ctx, "u2")
		require.NoError(t, err)
		require.Equal(t, 2, n)
		eventually(t, gone(id1), "session 1 still served after sign-out everywhere")
		eventually(t, gone(id2), "session 2 still served after sign-out everywhere")
		_, err = b.Get(ctx, other)
		require.NoError(t, err, "another user's session is untouched")
	})
	t.Run("UpdateUser", func(t *testing.T) {
		id := e.create(t, a, "u4", time.Hour)
		warm(id)
		_, err := a.UpdateUser(ctx, "u4", []byte(`{"name":"B"}`))
		require.NoError(t, err)
		eventually(t, func() bool {
			s, err := b.Get(ctx, id)
			return err == nil && string(s.User) == `{"name":"B"}`
		}, "updated profile not seen by the other instance")
	})
	t.Run("Touch", func(t *testing.T) {
		id := e.create(t, a, "u5", time.Hour)
		warm(id)
		exp := e.clock.Now().Add(2 * time.Hour).Truncate(time.Millisecond)
		_, err := a.Touch(ctx, id, e.clock.Now(), exp)
		require.NoError(t, err)
		eventually(t, func() bool {
			s, err := b.Get(ctx, id)
			return err == nil && s.ExpiresAt.Equal(exp)
		}, "extended session not seen by the other instance")
	})
	t.Run("CreateEvicts", func(t *testing.T) {
		old := e.create(t, a, "u6", time.Minute)
		warm(old)
		token, err := store.NewToken("u6")
		require.NoError(t, err)
		id, err := store.IDFromToken(token)
		require.NoError(t, err)
		evicted, err := a.Create(ctx, &store.Session{ID: id, UserID: "u6", ExpiresAt: e.clock.Now().Add(time.Hour)},
			store.CreateOptions{MaxPerUser: 1})
		require.NoError(t, err)
		require.Equal(t, []string{old}, evicted)
		eventually(t, gone(old), "evicted session still served by the other instance")
	})
	require.Positive(t, b.Stats().Hits)
	require.Positive(t, b.Stats().Invalidations)
}

// A message the cache does not understand drops everything rather than
// risk serving what it meant to invalidate.
func TestUnknownMessageDropsAll(t *testing.T) {
	e := newEnv(t)
	nc := e.instance(t, nearcache.Options{})
	id := e.create(t, nc, "alice", time.Hour)
	ctx := context.Background()
	_, err := nc.Get(ctx, id)
	require.NoError(t, err)
	require.NoError(t, e.backend(t).Delete(ctx, id))
	drops := nc.Stats().Drops
	e.mr.Publish(nc.Channel(), "x:future-format")
	eventually(t, func() bool { return nc.Stats().Drops > drops }, "unknown message did not drop the cache")
	_, err = nc.Get(ctx, id)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// When the invalidation channel breaks, the cache is bypassed; when it is
// back, everything cached before is dropped, since messages may have been
// missed in between.
func TestReconnectDropsCache(t *testing.T) {
	e := newEnv(t)
	nc := e.instance(t, nearcache.Options{})
	id := e.create(t, nc, "alice", time.Hour)
	ctx := context.Background()
	_, err := nc.Get(ctx, id)
	require.NoError(t, err)
	drops := nc.Stats().Drops

	e.mr.Close()
	eventually(t, func() bool { return !nc.Live() }, "cache still live with its Redis down")
	_, err = nc.Get(ctx, id)
	require.ErrorIs(t, err, store.ErrUnavailable, "with the channel down Get asks the backend")

	require.NoError(t, e.mr.Restart())
	// Restart keeps the data; a write no instance was told of happens
	// while the subscriber is reconnecting.
	require.NoError(t, e.backend(t).Delete(ctx, id))
	eventually(t, nc.Live, "cache did not come back with its Redis")
	require.Greater(t, nc.Stats().Drops, drops)
	_, err = nc.Get(ctx, id)
	require.ErrorIs(t, err, store.ErrNotFound)
}

// MaxEntries bounds memory: a full cache still answers every Get.
func TestMaxEntries(t *testing.T) {
	e := newEnv(t)
	nc := e.instance(t, nearcache.Options{MaxEntries: 1})
	ctx := context.Background()
	var ids []string
	for i := range 200 {
		ids = append(ids, e.create(t, nc, fmt.Sprint("user-", i), time.Hour))
	}
	for range 2 {
		for _, id := range ids {
			s, err := nc.Get(ctx, id)
			require.NoError(t, err)
			require.Equal(t, id, s.ID)
		}
	}
	require.Less(t, nc.Stats().Hits, uint64(len(ids)), "at most one entry per shard is kept")
}

func TestMalformedIDIsNotFound(t *testing.T) {
	e := newEnv(t)
	nc := e.instance(t, nearcache.Options{})
	for _, id := range []string{"", "x", "not-an-id-not-an-id-not-an-id-not-an-id-not-an-"} {
		_, err := nc.Get(context.Background(), id)
		require.ErrorIs(t, err, store.ErrNotFound, "Get(%q)", id)
	}
}

// lossy is a backend whose writes happen and then report ErrUnavailable,
// as a revocation does when its WAIT for replicas times out, or any write
// whose reply is lost.
type lossy struct{ store.Store }

var errLost = fmt.Errorf("lossy: %w: reply lost", store.ErrUnavailable)

func (l lossy) Create(ctx context.Context, s *store.Session, opts store.CreateOptions) ([]string, error) {
	if _, err := l.Store.Create(ctx, s, opts); err != nil {
		return nil, err
	}
	return nil, errLost
}

func (l lossy) Touch(ctx context.Context, id string, lastSeen, expiresAt time.Time) (*store.Session, error) {
	if _, err := l.Store.Touch(ctx, id, lastSeen, expiresAt); err != nil {
		return nil, err
	}
	return nil, errLost
}

func (l lossy) UpdateUser(ctx context.Context, userID string, user json.RawMessage) (int, error) {
	if _, err := l.Store.UpdateUser(ctx, userID, user); err != nil {
		return 0, err
	}
	return 0, errLost
}

func (l lossy) Delete(ctx context.Context, id string) error {
	if err := l.Store.Delete(ctx, id); err != nil {
		return err
	}
	return errLost
}

func (l lossy) DeleteUser(ctx context.Context, userID string) (int, error) {
	if _, err := l.Store.DeleteUser(ctx, userID); err != nil {
		return 0, err
	}
	return 0, errLost
}

// A write that fails with ErrUnavailable may have happened: the instance
// that made it must not serve its cached copy, and the others are told,
// exactly as after a success (the clock does not move, so no TTL helps).
func TestUnavailableWriteInvalidates(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	st, err := redis.New(c, redis.Options{Now: e.clock.Now})
	require.NoError(t, err)
	a, err := nearcache.New(lossy{st}, c, nearcache.Options{Now: e.clock.Now, Logger: quiet})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, a.WaitReady(ctx))
	b := e.instance(t, nearcache.Options{})

	// cached reads id through a and b twice and requires the second read
	// of each to be a hit, so that what follows tests invalidation.
	cached := func(t *testing.T, id string) {
		t.Helper()
		for _, nc := range []*nearcache.Cache{a, b} {
			hits := nc.Stats().Hits
			for range 2 {
				_, err := nc.Get(ctx, id)
				require.NoError(t, err)
			}
			require.Equal(t, hits+1, nc.Stats().Hits, "session not cached")
		}
	}
	// stale reports whether a or b still answers for id with a copy that
	// check rejects; a must not at once, b not once its message arrived.
	fresh := func(t *testing.T, id string, check func(*store.Session, error) bool) {
		t.Helper()
		require.True(t, check(a.Get(ctx, id)), "the instance that wrote serves its stale copy")
		eventually(t, func() bool { return check(b.Get(ctx, id)) }, "the other instance serves its stale copy")
	}
	notFound := func(_ *store.Session, err error) bool { return errors.Is(err, store.ErrNotFound) }

	t.Run("Delete", func(t *testing.T) {
		id := e.create(t, st, "u1", time.Hour)
		cached(t, id)
		require.ErrorIs(t, a.Delete(ctx, id), store.ErrUnavailable)
		fresh(t, id, notFound)
	})
	t.Run("DeleteUser", func(t *testing.T) {
		id := e.create(t, st, "u2", time.Hour)
		cached(t, id)
		_, err := a.DeleteUser(ctx, "u2")
		require.ErrorIs(t, err, store.ErrUnavailable)
		fresh(t, id, notFound)
	})
	t.Run("UpdateUser", func(t *testing.T) {
		id := e.create(t, st, "u3", time.Hour)
		cached(t, id)
		_, err := a.UpdateUser(ctx, "u3", []byte(`{"name":"B"}`))
		require.ErrorIs(t, err, store.ErrUnavailable)
		fresh(t, id, func(s *store.Session, err error) bool { return err == nil && string(s.User) == `{"name":"B"}` })
	})
	t.Run("Touch", func(t *testing.T) {
		id := e.create(t, st, "u4", time.Hour)
		cached(t, id)
		exp := e.clock.Now().Add(2 * time.Hour).Truncate(time.Millisecond)
		_, err := a.Touch(ctx, id, e.clock.Now(), exp)
		require.ErrorIs(t, err, store.ErrUnavailable)
		fresh(t, id, func(s *store.Session, err error) bool { return err == nil && s.ExpiresAt.Equal(exp) })
	})
	t.Run("CreateEvicts", func(t *testing.T) {
		old := e.create(t, st, "u5", time.Minute)
		cached(t, old)
		token, err := store.NewToken("u5")
		require.NoError(t, err)
		id, err := store.IDFromToken(token)
		require.NoError(t, err)
		_, err = a.Create(ctx, &store.Session{ID: id, UserID: "u5", ExpiresAt: e.clock.Now().Add(time.Hour)},
			store.CreateOptions{MaxPerUser: 1})
		require.ErrorIs(t, err, store.ErrUnavailable)
		fresh(t, old, notFound)
	})
	t.Run("RejectedPublishesNothing", func(t *testing.T) {
		before := b.Stats().Invalidations
		_, err := a.UpdateUser(ctx, "", nil)
		require.ErrorIs(t, err, store.ErrInvalid)
		_, err = a.Touch(ctx, "not-an-id", e.clock.Now(), e.clock.Now().Add(time.Hour))
		require.ErrorIs(t, err, store.ErrNotFound)
		// lossy turns Delete's nil into ErrUnavailable; a malformed ID
		// names no session, so there is still nothing to publish.
		require.ErrorIs(t, a.Delete(ctx, "not-an-id"), store.ErrUnavailable)
		// Redis delivers a PUBLISH before it answers it, so any publish
		// made above reaches b before this marker.
		require.NoError(t, c.Publish(ctx, a.Channel(), "s:").Err())
		eventually(t, func() bool { return b.Stats().Invalidations > before }, "marker not received")
		require.Equal(t, before+1, b.Stats().Invalidations, "a rejected write was published")
	})
}
