package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/storetest"
)

// newSession returns a valid session of userID expiring ttl after now.
func newSession(t testing.TB, userID string, now time.Time, ttl time.Duration) *store.Session {
	t.Helper()
	token, err := store.NewToken(userID)
	require.NoError(t, err)
	id, err := store.IDFromToken(token)
	require.NoError(t, err)
	return &store.Session{
		ID: id, UserID: userID,
		User:      []byte(`{"id":"` + userID + `","name":"A User","email":"user@example.com"}`),
		Device:    store.Device{UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", IP: "198.51.100.4", Label: "laptop"},
		ExpiresAt: now.Add(ttl),
	}
}

// checkInvariants verifies, shard by shard, that the session map, the
// user indexes and the expiry heap hold exactly the same entries, that the
// heap is a heap with correct back-indexes and that indexes are ordered.
// It returns how many sessions the store holds (live or not).
func checkInvariants(t *testing.T, s *Store) int {
	t.Helper()
	total := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		require.Len(t, sh.expiry, len(sh.sessions), "shard %d: heap size", i)
		for j, e := range sh.expiry {
			require.Equal(t, int32(j), e.heapIdx, "shard %d: heapIdx", i)
			if j > 0 {
				require.LessOrEqual(t, sh.expiry[(j-1)/2].expires, e.expires, "shard %d: heap order at %d", i, j)
			}
			require.Same(t, e, sh.sessions[e.id], "shard %d: heap entry not in the map", i)
		}
		indexed := 0
		for userID, u := range sh.users {
			require.Equal(t, userID, u.id)
			require.Less(t, u.dead, len(u.entries), "shard %d: index of %q has no live entry but is kept", i, userID)
			require.LessOrEqual(t, u.dead, len(u.entries)/2, "shard %d: index of %q is mostly dead", i, userID)
			dead := 0
			for k, e := range u.entries {
				require.Same(t, u, e.owner)
				if !e.stored() {
					dead++
					require.NotSame(t, e, sh.sessions[e.id], "shard %d: dead entry still in the map", i)
					continue
				}
				require.Same(t, e, sh.sessions[e.id], "shard %d: indexed entry not in the map", i)
				require.Equal(t, store.UserTag(userID), e.id[:store.TagLen], "session in the wrong index")
				require.Same(t, sh, s.shardOfID(e.id), "session in the wrong shard")
				if k > 0 {
					require.LessOrEqual(t, u.entries[k-1].created, e.created, "index of %q out of CreatedAt order", userID)
				}
			}
			require.Equal(t, dead, u.dead, "shard %d: dead count of %q", i, userID)
			indexed += len(u.entries) - dead
		}
		require.Equal(t, len(sh.sessions), indexed, "shard %d: map and indexes disagree", i)
		total += len(sh.sessions)
		sh.mu.RUnlock()
	}
	return total
}

func TestSweepRemovesOnlyExpired(t *testing.T) {
	clk := storetest.NewClock(time.Now())
	s := New(Options{Now: clk.Now, JanitorInterval: -1})
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()

	var short, long []string
	for i := range 200 {
		userID := fmt.Sprintf("user-%d", i%37)
		ttl := time.Hour
		if i%3 == 0 {
			ttl = time.Minute + time.Duration(i)*time.Millisecond
		}
		sess := newSession(t, userID, clk.Now(), ttl)
		_, err := s.Create(ctx, sess, store.CreateOptions{})
		require.NoError(t, err)
		if ttl < time.Hour {
			short = append(short, sess.ID)
		} else {
			long = append(long, sess.ID)
		}
	}
	require.Equal(t, 200, checkInvariants(t, s))
	require.Zero(t, s.sweep(), "sweep before anything expired")

	clk.Advance(10 * time.Minute)
	// Reads already hide the expired sessions; the sweep frees them.
	_, err := s.Get(ctx, short[0])
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Equal(t, len(short), s.sweep())
	require.Equal(t, len(long), checkInvariants(t, s))
	for _, id := range short {
		sh := s.shardOfID(id)
		require.NotContains(t, sh.sessions, id)
	}
	for _, id := range long {
		_, err := s.Get(ctx, id)
		require.NoError(t, err)
	}
	require.Zero(t, s.sweep(), "second sweep")
}

func TestSweepInBatches(t *testing.T) {
	// One user's sessions share one shard: more than a batch expire there.
	clk := storetest.NewClock(time.Now())
	s := New(Options{Now: clk.Now, JanitorInterval: -1})
	t.Cleanup(func() { _ = s.Close() })
	const n = 3*sweepBatch + 7
	for range n {
		_, err := s.Create(context.Background(), newSession(t, "alice", clk.Now(), time.Minute), store.CreateOptions{})
		require.NoError(t, err)
	}
	clk.Advance(time.Minute)
	require.Equal(t, n, s.sweep())
	require.Zero(t, checkInvariants(t, s))
	require.Empty(t, s.shardOfUser("alice").users, "the empty user index is dropped")
}

// TestBigUser covers a user with far more sessions than a cap would allow:
// removals leave dead entries that are compacted away, and the index stays
// in step through deletes, sweeps and a capped Create.
func TestBigUser(t *testing.T) {
	clk := storetest.NewClock(time.Now())
	s := New(Options{Now: clk.Now, JanitorInterval: -1})
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	var ids []string
	for i := range 1000 {
		sess := newSession(t, "big", clk.Now(), time.Minute+time.Duration(i%2)*time.Hour)
		_, err := s.Create(ctx, sess, store.CreateOptions{})
		require.NoError(t, err)
		ids = append(ids, sess.ID)
	}
	for _, id := range ids[:300:300] {
		require.NoError(t, s.Delete(ctx, id))
	}
	require.Equal(t, 700, checkInvariants(t, s))
	clk.Advance(time.Minute)
	require.Equal(t, 350, s.sweep())
	require.Equal(t, 350, checkInvariants(t, s))
	n, err := s.Count(ctx, "big")
	require.NoError(t, err)
	require.Equal(t, 350, n)

	evicted, err := s.Create(ctx, newSession(t, "big", clk.Now(), 2*time.Hour), store.CreateOptions{MaxPerUser: 10})
	require.NoError(t, err)
	require.Len(t, evicted, 341)
	require.Equal(t, 10, checkInvariants(t, s))
	list, err := s.List(ctx, "big")
	require.NoError(t, err)
	require.Len(t, list, 10)
}

func TestJanitorRuns(t *testing.T) {
	clk := storetest.NewClock(time.Now())
	s := New(Options{Now: clk.Now, JanitorInterval: time.Millisecond})
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	keep := newSession(t, "bob", clk.Now(), time.Hour)
	_, err := s.Create(ctx, keep, store.CreateOptions{})
	require.NoError(t, err)
	for i := range 20 {
		_, err := s.Create(ctx, newSession(t, fmt.Sprint("user-", i), clk.Now(), time.Minute), store.CreateOptions{})
		require.NoError(t, err)
	}
	clk.Advance(time.Minute)
	require.Eventually(t, func() bool {
		n := 0
		for i := range s.shards {
			s.shards[i].mu.RLock()
			n += len(s.shards[i].sessions)
			s.shards[i].mu.RUnlock()
		}
		return n == 1
	}, 5*time.Second, time.Millisecond, "the janitor did not remove the expired sessions")
	require.Equal(t, 1, checkInvariants(t, s))
	_, err = s.Get(ctx, keep.ID)
	require.NoError(t, err)
}

func TestClose(t *testing.T) {
	for _, interval := range []time.Duration{0, time.Millisecond, -1} {
		s := New(Options{JanitorInterval: interval})
		require.NoError(t, s.Close())
		require.NoError(t, s.Close(), "second Close")
		// The store outlives its janitor.
		sess := newSession(t, "alice", time.Now(), time.Hour)
		_, err := s.Create(context.Background(), sess, store.CreateOptions{})
		require.NoError(t, err)
		_, err = s.Get(context.Background(), sess.ID)
		require.NoError(t, err)
	}
}

func TestDefaultClock(t *testing.T) {
	s := New(Options{})
	t.Cleanup(func() { _ = s.Close() })
	sess := newSession(t, "alice", time.Now(), time.Hour)
	before := time.Now().Truncate(time.Millisecond)
	_, err := s.Create(context.Background(), sess, store.CreateOptions{})
	require.NoError(t, err)
	got, err := s.Get(context.Background(), sess.ID)
	require.NoError(t, err)
	require.False(t, got.CreatedAt.Before(before), "CreatedAt = %v, want >= %v", got.CreatedAt, before)
	require.False(t, got.CreatedAt.After(time.Now()), "CreatedAt = %v is in the future", got.CreatedAt)
}

func TestTimeOutOfRange(t *testing.T) {
	s := New(Options{JanitorInterval: -1})
	t.Cleanup(func() { _ = s.Close() })
	far := time.Date(300_000_000, 1, 1, 0, 0, 0, 0, time.UTC) // past int64 milliseconds
	sess := newSession(t, "alice", time.Now(), time.Hour)
	sess.ExpiresAt = far
	_, err := s.Create(context.Background(), sess, store.CreateOptions{})
	require.ErrorIs(t, err, store.ErrInvalid)
	require.Zero(t, checkInvariants(t, s))

	sess = newSession(t, "alice", time.Now(), time.Hour)
	_, err = s.Create(context.Background(), sess, store.CreateOptions{})
	require.NoError(t, err)
	_, err = s.Touch(context.Background(), sess.ID, time.Now(), far)
	require.ErrorIs(t, err, store.ErrInvalid)
	got, err := s.Get(context.Background(), sess.ID)
	require.NoError(t, err)
	require.True(t, got.ExpiresAt.Equal(sess.ExpiresAt.Truncate(time.Millisecond)))
}

// TestHeapUnderChurn drives random Creates, Touches (which move entries
// within the heap), Deletes, evictions and sweeps, then checks every
// structure agrees.
func TestHeapUnderChurn(t *testing.T) {
	clk := storetest.NewClock(time.Now())
	s := New(Options{Now: clk.Now, JanitorInterval: -1})
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	var ids []string
	for range 3000 {
		now := clk.Now()
		switch op := rng.IntN(10); {
		case op < 4 || len(ids) == 0:
			sess := newSession(t, fmt.Sprint("u", rng.IntN(40)), now, time.Duration(1+rng.IntN(600))*time.Second)
			_, err := s.Create(ctx, sess, store.CreateOptions{MaxPerUser: rng.IntN(8)})
			require.NoError(t, err)
			ids = append(ids, sess.ID)
		case op < 7:
			_, err := s.Touch(ctx, ids[rng.IntN(len(ids))], now, now.Add(time.Duration(1+rng.IntN(600))*time.Second))
			if err != nil {
				require.ErrorIs(t, err, store.ErrNotFound)
			}
		case op == 7:
			require.NoError(t, s.Delete(ctx, ids[rng.IntN(len(ids))]))
		case op == 8:
			clk.Advance(time.Duration(rng.IntN(5000)) * time.Millisecond)
		default:
			s.sweep()
		}
	}
	checkInvariants(t, s)
	clk.Advance(time.Hour)
	s.sweep()
	require.Zero(t, checkInvariants(t, s))
}

func TestGetAllocatesOnlyTheSession(t *testing.T) {
	s := New(Options{JanitorInterval: -1})
	t.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	sess := newSession(t, "alice", time.Now(), time.Hour)
	_, err := s.Create(ctx, sess, store.CreateOptions{})
	require.NoError(t, err)
	var got *store.Session
	allocs := testing.AllocsPerRun(1000, func() {
		got, err = s.Get(ctx, sess.ID)
	})
	require.NoError(t, err)
	require.Equal(t, sess.ID, got.ID)
	require.Equal(t, 1.0, allocs, "Get allocations")

	missing := newSession(t, "alice", time.Now(), time.Hour).ID
	allocs = testing.AllocsPerRun(1000, func() { _, err = s.Get(ctx, missing) })
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Zero(t, allocs, "Get allocations for an unknown ID")
}
