package nearcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/memory"
)

// requireIndexed checks the invariant user-wide invalidation rests on:
// the user index holds exactly the cached IDs, each under its user. An ID
// missing from it would survive DeleteUser; an ID it keeps after its entry
// is gone is memory MaxEntries does not bound.
func requireIndexed(t *testing.T, c *Cache) int {
	t.Helper()
	c.usersMu.Lock()
	defer c.usersMu.Unlock()
	cached := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		for id, e := range sh.entries {
			require.Contains(t, c.users[e.sess.UserID], id, "cached %s is not indexed under its user", id)
		}
		cached += len(sh.entries)
		sh.mu.RUnlock()
	}
	indexed := 0
	for userID, ids := range c.users {
		require.NotEmpty(t, ids, "user %q indexed with no IDs", userID)
		for _, id := range ids {
			sh := c.shardOf(id)
			sh.mu.RLock()
			e := sh.entries[id]
			sh.mu.RUnlock()
			require.NotNil(t, e, "index of %q keeps %s, which is not cached", userID, id)
			require.Equal(t, userID, e.sess.UserID)
		}
		require.Len(t, ids, len(slices.Compact(slices.Sorted(slices.Values(ids)))), "index of %q repeats an ID", userID)
		indexed += len(ids)
	}
	require.Equal(t, cached, indexed)
	return cached
}

// The user index stays within what is cached whatever removes entries:
// the MaxEntries bound, invalidations of single sessions, a user-wide one.
func TestUserIndexBounded(t *testing.T) {
	mr := miniredis.RunT(t)
	client := goredis.NewClient(&goredis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	backend := memory.New(memory.Options{JanitorInterval: -1})
	t.Cleanup(func() { _ = backend.Close() })
	c, err := New(backend, client, Options{MaxEntries: shardCount, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, c.WaitReady(ctx))

	var ids []string
	for i := range 300 {
		userID := fmt.Sprint("user-", i%150)
		token, err := store.NewToken(userID)
		require.NoError(t, err)
		id, err := store.IDFromToken(token)
		require.NoError(t, err)
		_, err = c.Create(ctx, &store.Session{ID: id, UserID: userID, ExpiresAt: time.Now().Add(time.Hour)}, store.CreateOptions{})
		require.NoError(t, err)
		ids = append(ids, id)
	}
	for range 3 { // re-reads replace entries; they must not repeat IDs
		for _, id := range ids {
			_, err := c.Get(ctx, id)
			require.NoError(t, err)
		}
	}
	n := requireIndexed(t, c)
	require.Positive(t, n)
	require.LessOrEqual(t, n, shardCount, "MaxEntries")

	for _, id := range ids[:100] {
		require.NoError(t, c.Delete(ctx, id))
	}
	requireIndexed(t, c)
	_, err = c.DeleteUser(ctx, "user-120")
	require.NoError(t, err)
	requireIndexed(t, c)

	// Reads, revocations and sign-outs at once keep it in step too.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				id := ids[(w*53+i*7)%len(ids)]
				var err error
				switch i % 10 {
				case 0:
					err = c.Delete(ctx, id)
				case 1:
					_, err = c.DeleteUser(ctx, fmt.Sprint("user-", i%150))
				default:
					if _, err = c.Get(ctx, id); errors.Is(err, store.ErrNotFound) {
						err = nil
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	requireIndexed(t, c)

	for _, id := range ids {
		require.NoError(t, c.Delete(ctx, id))
	}
	require.Zero(t, requireIndexed(t, c))
	c.usersMu.Lock()
	require.Empty(t, c.users, "users with nothing cached are forgotten")
	c.usersMu.Unlock()
}
