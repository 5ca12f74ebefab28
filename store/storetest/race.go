package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
)

// mintID is newID for goroutines other than the test's own.
func mintID(userID string) (string, error) {
	token, err := store.NewToken(userID)
	if err != nil {
		return "", err
	}
	return store.IDFromToken(token)
}

func testRace(t *testing.T, newStore NewStore) {
	// DeleteUserVsCreate proves "sign out everywhere" is atomic against
	// concurrent sign-ins: every Create that returned before DeleteUser
	// began is gone, every other one either was deleted (and counted) or
	// survives, and the user's index agrees with the stored sessions. A
	// backend that reads the index, then deletes, lets a Create slip in
	// between and leaves a session its index (Count, List) does not know.
	t.Run("DeleteUserVsCreate", func(t *testing.T) {
		e := setup(t, newStore)
		const rounds, workers, perWorker = 50, 4, 8
		for round := range rounds {
			userID := fmt.Sprintf("racer-%d", round)
			var sessions [workers][perWorker]*store.Session
			for w := range workers {
				for i := range perWorker {
					sessions[w][i] = &store.Session{ID: newID(t, userID), UserID: userID, ExpiresAt: e.clk.Now().Add(time.Hour)}
				}
			}
			var (
				mu            sync.Mutex
				deleting      bool
				before, after []string
				errs          []error
				wg            sync.WaitGroup
				first         sync.Once
			)
			go1, created := make(chan struct{}), make(chan struct{})
			for w := range workers {
				wg.Go(func() {
					<-go1
					for _, s := range sessions[w] {
						_, err := e.s.Create(e.ctx, s, store.CreateOptions{})
						mu.Lock()
						switch {
						case err != nil:
							errs = append(errs, err)
						case deleting:
							after = append(after, s.ID)
						default:
							before = append(before, s.ID)
						}
						mu.Unlock()
						first.Do(func() { close(created) })
					}
				})
			}
			close(go1)
			<-created
			mu.Lock()
			deleting = true
			mu.Unlock()
			deleted, err := e.s.DeleteUser(e.ctx, userID)
			wg.Wait()
			require.NoError(t, err, "round %d: DeleteUser", round)
			require.Empty(t, errs, "round %d: Create failed", round)

			for _, id := range before {
				e.requireNotFound(t, id)
			}
			var survivors []string
			for _, id := range after {
				_, err := e.s.Get(e.ctx, id)
				if err == nil {
					survivors = append(survivors, id)
					continue
				}
				require.ErrorIs(t, err, store.ErrNotFound, "round %d: Get", round)
			}
			require.GreaterOrEqual(t, deleted, len(before), "round %d: DeleteUser missed sessions created before it", round)
			require.Equal(t, len(before)+len(after), deleted+len(survivors),
				"round %d: %d created, DeleteUser reported %d, %d survive", round, len(before)+len(after), deleted, len(survivors))
			n, err := e.s.Count(e.ctx, userID)
			require.NoError(t, err)
			require.Equal(t, len(survivors), n, "round %d: Count disagrees with the sessions Get finds", round)
			list, err := e.s.List(e.ctx, userID)
			require.NoError(t, err)
			require.ElementsMatch(t, survivors, ids(list), "round %d: List disagrees with the sessions Get finds", round)
		}
	})

	// Cap proves the per-user cap is applied atomically: concurrent
	// Creates never leave more than MaxPerUser sessions, never evict one
	// session twice, and what is neither evicted nor surviving does not exist.
	t.Run("Cap", func(t *testing.T) {
		e := setup(t, newStore)
		const workers, perWorker, limit = 4, 10, 3
		var sessions [workers][perWorker]*store.Session
		for w := range workers {
			for i := range perWorker {
				sessions[w][i] = e.session(t, "alice", time.Hour)
			}
		}
		var (
			mu               sync.Mutex
			created, evicted []string
			errs             []error
			wg               sync.WaitGroup
		)
		for w := range workers {
			wg.Go(func() {
				for _, s := range sessions[w] {
					ev, err := e.s.Create(e.ctx, s, store.CreateOptions{MaxPerUser: limit})
					mu.Lock()
					if err != nil {
						errs = append(errs, err)
					} else {
						created = append(created, s.ID)
						evicted = append(evicted, ev...)
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		require.Empty(t, errs)
		require.Len(t, created, workers*perWorker)
		seen := map[string]bool{}
		for _, id := range evicted {
			require.False(t, seen[id], "session evicted twice")
			require.True(t, slices.Contains(created, id), "evicted an ID that was never created")
			seen[id] = true
			e.requireNotFound(t, id)
		}
		var survivors []string
		for _, id := range created {
			if !seen[id] {
				survivors = append(survivors, id)
				e.get(t, id)
			}
		}
		require.Len(t, survivors, limit)
		n, err := e.s.Count(e.ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, limit, n)
		require.ElementsMatch(t, survivors, ids(mustList(t, e, "alice")))
	})

	// Mixed is a smoke test for data races (run it under -race) and for
	// the index drifting from the data under every call at once.
	t.Run("Mixed", func(t *testing.T) {
		e := setup(t, newStore)
		const workers, ops = 4, 200
		users := []string{"u0", "u1", "u2", "u3"}
		var (
			mu   sync.Mutex
			errs []error
			wg   sync.WaitGroup
		)
		fail := func(err error) {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(w), 42))
				var mine []string
				for range ops {
					userID := users[rng.IntN(len(users))]
					var known string
					if len(mine) > 0 {
						known = mine[rng.IntN(len(mine))]
					}
					now := e.clk.Now()
					var err error
					switch op := rng.IntN(10); {
					case op < 3 || known == "":
						var id string
						if id, err = mintID(userID); err != nil {
							break
						}
						s := &store.Session{ID: id, UserID: userID, User: []byte(`{"w":1}`), ExpiresAt: now.Add(time.Hour)}
						_, err = e.s.Create(e.ctx, s, store.CreateOptions{MaxPerUser: 1 + rng.IntN(6)})
						mine = append(mine, id)
					case op == 3:
						var got *store.Session
						if got, err = e.s.Get(e.ctx, known); err == nil && got.ID != known {
							err = fmt.Errorf("Get(%s) returned session %s", known, got.ID)
						}
					case op == 4:
						_, err = e.s.Touch(e.ctx, known, now, now.Add(2*time.Hour))
					case op == 5:
						err = e.s.Delete(e.ctx, known)
					case op == 6:
						_, err = e.s.UpdateUser(e.ctx, userID, []byte(`{"w":2}`))
					case op == 7:
						var list []*store.Session
						list, err = e.s.List(e.ctx, userID)
						for i, s := range list {
							if s.UserID != userID || i > 0 && s.CreatedAt.Before(list[i-1].CreatedAt) {
								err = fmt.Errorf("List(%s) returned %s of %s at %d", userID, s.ID, s.UserID, i)
							}
						}
					case op == 8:
						_, err = e.s.Count(e.ctx, userID)
					default:
						if rng.IntN(5) == 0 {
							_, err = e.s.DeleteUser(e.ctx, userID)
						} else {
							e.clk.Advance(time.Millisecond)
						}
					}
					if err != nil && !errors.Is(err, store.ErrNotFound) {
						fail(err)
					}
				}
			})
		}
		wg.Wait()
		require.Empty(t, errs)
		for _, userID := range users {
			list := mustList(t, e, userID)
			n, err := e.s.Count(e.ctx, userID)
			require.NoError(t, err)
			require.Equal(t, len(list), n, "Count(%s) disagrees with List", userID)
			for _, s := range list {
				requireSession(t, s, e.get(t, s.ID), "Get(%s)", s.ID)
			}
		}
	})
}

func testContext(t *testing.T, newStore NewStore) {
	e := setup(t, newStore)
	alice := e.add(t, "alice", time.Hour)
	fresh := e.session(t, "alice", time.Hour)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	now := e.clk.Now()
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Create", func(ctx context.Context) error {
			_, err := e.s.Create(ctx, fresh, store.CreateOptions{MaxPerUser: 1})
			return err
		}},
		{"Get", func(ctx context.Context) error { _, err := e.s.Get(ctx, alice.ID); return err }},
		{"Touch", func(ctx context.Context) error {
			_, err := e.s.Touch(ctx, alice.ID, now, now.Add(2*time.Hour))
			return err
		}},
		{"UpdateUser", func(ctx context.Context) error { _, err := e.s.UpdateUser(ctx, "alice", []byte(`{}`)); return err }},
		{"Delete", func(ctx context.Context) error { return e.s.Delete(ctx, alice.ID) }},
		{"List", func(ctx context.Context) error { _, err := e.s.List(ctx, "alice"); return err }},
		{"DeleteUser", func(ctx context.Context) error { _, err := e.s.DeleteUser(ctx, "alice"); return err }},
		{"Count", func(ctx context.Context) error { _, err := e.s.Count(ctx, "alice"); return err }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			require.ErrorIs(t, c.call(cancelled), context.Canceled)
			e.requireNotFound(t, fresh.ID)
			e.requireUser(t, "alice", alice)
		})
	}
	t.Run("DeadlineExceeded", func(t *testing.T) {
		expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		for _, c := range calls {
			require.ErrorIs(t, c.call(expired), context.DeadlineExceeded, c.name)
		}
		e.requireNotFound(t, fresh.ID)
		e.requireUser(t, "alice", alice)
	})
}
