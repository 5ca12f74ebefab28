package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
)

func testUpdateUser(t *testing.T, newStore NewStore) {
	// three sets up alice with three sessions and bob with one.
	three := func(t *testing.T) (e *env, alice []*store.Session, bob *store.Session) {
		e = setup(t, newStore)
		for i := range 3 {
			alice = append(alice, e.add(t, "alice", time.Duration(i+1)*time.Hour))
		}
		bob = e.add(t, "bob", time.Hour)
		e.clk.Advance(5*time.Minute + 777777*time.Nanosecond)
		return e, alice, bob
	}

	t.Run("AllSessions", func(t *testing.T) {
		e, alice, bob := three(t)
		user := json.RawMessage(`{"id":"alice","name":"Alice B.","plan":"pro"}`)
		n, err := e.s.UpdateUser(e.ctx, "alice", user)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		for _, s := range alice {
			s.User, s.UpdatedAt = user, ms(e.clk.Now())
		}
		e.requireUser(t, "alice", alice...)
		e.requireUser(t, "bob", bob)
	})

	t.Run("Clear", func(t *testing.T) {
		e, alice, _ := three(t)
		n, err := e.s.UpdateUser(e.ctx, "alice", nil)
		require.NoError(t, err)
		require.Equal(t, 3, n)
		for _, s := range alice {
			s.User, s.UpdatedAt = nil, ms(e.clk.Now())
		}
		e.requireUser(t, "alice", alice...)
	})

	t.Run("UnknownUser", func(t *testing.T) {
		e, alice, bob := three(t)
		n, err := e.s.UpdateUser(e.ctx, "nobody", json.RawMessage(`{}`))
		require.NoError(t, err)
		require.Zero(t, n)
		e.requireUser(t, "nobody")
		e.requireUser(t, "alice", alice...)
		e.requireUser(t, "bob", bob)
	})

	t.Run("InputNotRetained", func(t *testing.T) {
		e, alice, _ := three(t)
		user := json.RawMessage(`{"v":1}`)
		_, err := e.s.UpdateUser(e.ctx, "alice", user)
		require.NoError(t, err)
		copy(user, `{"v":2}`) // the caller reuses its buffer
		for _, s := range alice {
			s.User, s.UpdatedAt = json.RawMessage(`{"v":1}`), ms(e.clk.Now())
		}
		e.requireUser(t, "alice", alice...)
	})

	t.Run("Invalid", func(t *testing.T) {
		e, alice, bob := three(t)
		for name, c := range map[string]struct {
			user json.RawMessage
			want error
		}{
			"InvalidJSON":     {json.RawMessage(`{"id":`), store.ErrInvalid},
			"TrailingGarbage": {json.RawMessage(`{} {}`), store.ErrInvalid},
			"Oversize":        {jsonOfSize(store.MaxUserSize + 1), store.ErrTooLarge},
		} {
			n, err := e.s.UpdateUser(e.ctx, "alice", c.user)
			require.ErrorIs(t, err, c.want, "UpdateUser(%s) = %d", name, n)
			e.requireUser(t, "alice", alice...)
			e.requireUser(t, "bob", bob)
		}
	})
}

func testDelete(t *testing.T, newStore NewStore) {
	t.Run("One", func(t *testing.T) {
		e := setup(t, newStore)
		a1 := e.add(t, "alice", time.Hour)
		a2 := e.add(t, "alice", time.Hour)
		bob := e.add(t, "bob", time.Hour)
		require.NoError(t, e.s.Delete(e.ctx, a1.ID))
		e.requireNotFound(t, a1.ID)
		e.requireUser(t, "alice", a2)
		e.requireUser(t, "bob", bob)
		require.NoError(t, e.s.Delete(e.ctx, a1.ID), "Delete of a deleted ID")
		e.requireUser(t, "alice", a2)
	})

	t.Run("Unknown", func(t *testing.T) {
		e := setup(t, newStore)
		a := e.add(t, "alice", time.Hour)
		require.NoError(t, e.s.Delete(e.ctx, newID(t, "alice")))
		require.NoError(t, e.s.Delete(e.ctx, newID(t, "bob")))
		for name, id := range malformedIDs(t) {
			require.NoError(t, e.s.Delete(e.ctx, id), "Delete(malformed %s)", name)
		}
		e.requireUser(t, "alice", a)
	})

	t.Run("ThenRecreate", func(t *testing.T) {
		e := setup(t, newStore)
		s := e.session(t, "alice", time.Hour)
		e.create(t, s, store.CreateOptions{})
		require.NoError(t, e.s.Delete(e.ctx, s.ID))
		s.Device.Label = "second life"
		want := e.create(t, s, store.CreateOptions{})
		e.requireUser(t, "alice", want)
	})
}

func testDeleteUser(t *testing.T, newStore NewStore) {
	t.Run("All", func(t *testing.T) {
		e := setup(t, newStore)
		var alice []*store.Session
		for range 3 {
			alice = append(alice, e.add(t, "alice", time.Hour))
		}
		bob := e.add(t, "bob", time.Hour)
		n, err := e.s.DeleteUser(e.ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, 3, n)
		for _, s := range alice {
			e.requireNotFound(t, s.ID)
		}
		e.requireUser(t, "alice")
		e.requireUser(t, "bob", bob)

		n, err = e.s.DeleteUser(e.ctx, "alice")
		require.NoError(t, err)
		require.Zero(t, n, "second DeleteUser")

		// Signing in again after "sign out everywhere" works.
		again := e.add(t, "alice", time.Hour)
		e.requireUser(t, "alice", again)
	})

	t.Run("UnknownUser", func(t *testing.T) {
		e := setup(t, newStore)
		a := e.add(t, "alice", time.Hour)
		n, err := e.s.DeleteUser(e.ctx, "nobody")
		require.NoError(t, err)
		require.Zero(t, n)
		e.requireUser(t, "alice", a)
	})
}

func testLimit(t *testing.T, newStore NewStore) {
	// user makes alice's sessions with the given TTLs (in hours), in order.
	user := func(t *testing.T, e *env, hours ...int) []*store.Session {
		var out []*store.Session
		for i, h := range hours {
			s := e.session(t, "alice", time.Duration(h)*time.Hour)
			s.CreatedAt = e.clk.Now().Add(time.Duration(i-len(hours)) * time.Minute)
			out = append(out, e.create(t, s, store.CreateOptions{}))
		}
		return out
	}

	t.Run("EvictOldest", func(t *testing.T) {
		e := setup(t, newStore)
		old := user(t, e, 3, 1, 2)
		s := e.session(t, "alice", 5*time.Hour)
		want, err := store.PrepareCreate(s, e.clk.Now())
		require.NoError(t, err)
		evicted, err := e.s.Create(e.ctx, s, store.CreateOptions{MaxPerUser: 3}) // OnLimit zero value: EvictOldest
		require.NoError(t, err)
		require.Equal(t, []string{old[1].ID}, evicted, "evicted: want the session expiring soonest")
		e.requireNotFound(t, old[1].ID)
		e.requireUser(t, "alice", old[0], old[2], want)
	})

	t.Run("EvictFollowsTouch", func(t *testing.T) {
		e := setup(t, newStore)
		old := user(t, e, 1, 2)
		touched, err := e.s.Touch(e.ctx, old[0].ID, e.clk.Now(), e.clk.Now().Add(3*time.Hour))
		require.NoError(t, err)
		s := e.session(t, "alice", 5*time.Hour)
		evicted, err := e.s.Create(e.ctx, s, store.CreateOptions{MaxPerUser: 2, OnLimit: store.EvictOldest})
		require.NoError(t, err)
		require.Equal(t, []string{old[1].ID}, evicted, "evicted: Touch moved the first session's expiry past the second's")
		requireSession(t, touched, e.get(t, old[0].ID), "Get(touched)")
	})

	t.Run("EvictSeveral", func(t *testing.T) {
		e := setup(t, newStore)
		old := user(t, e, 4, 1, 3, 2)
		s := e.session(t, "alice", 5*time.Hour)
		want, err := store.PrepareCreate(s, e.clk.Now())
		require.NoError(t, err)
		evicted, err := e.s.Create(e.ctx, s, store.CreateOptions{MaxPerUser: 2})
		require.NoError(t, err)
		require.ElementsMatch(t, []string{old[1].ID, old[3].ID, old[2].ID}, evicted)
		e.requireUser(t, "alice", old[0], want)
	})

	t.Run("UnderCap", func(t *testing.T) {
		e := setup(t, newStore)
		old := user(t, e, 1, 2)
		for _, policy := range []store.LimitPolicy{store.EvictOldest, store.Refuse} {
			s := e.session(t, "alice", time.Hour)
			want := e.create(t, s, store.CreateOptions{MaxPerUser: 4, OnLimit: policy})
			old = append(old, want)
		}
		e.requireUser(t, "alice", old...)
	})

	t.Run("ExpiredDoNotCount", func(t *testing.T) {
		for _, policy := range []store.LimitPolicy{store.Refuse, store.EvictOldest} {
			e := setup(t, newStore)
			old := user(t, e, 1, 3)
			e.clk.Advance(2 * time.Hour)
			s := e.session(t, "alice", time.Hour)
			// create requires that nothing is reported evicted: the expired
			// session was already gone.
			want := e.create(t, s, store.CreateOptions{MaxPerUser: 2, OnLimit: policy})
			e.requireUser(t, "alice", old[1], want)
		}
	})

	t.Run("Refuse", func(t *testing.T) {
		e := setup(t, newStore)
		old := user(t, e, 1, 2)
		s := e.session(t, "alice", time.Hour)
		evicted, err := e.s.Create(e.ctx, s, store.CreateOptions{MaxPerUser: 2, OnLimit: store.Refuse})
		require.ErrorIs(t, err, store.ErrTooManySessions)
		require.Empty(t, evicted)
		e.requireNotFound(t, s.ID)
		e.requireUser(t, "alice", old...)
	})

	t.Run("PerUser", func(t *testing.T) {
		e := setup(t, newStore)
		var bob []*store.Session
		for range 3 {
			bob = append(bob, e.add(t, "bob", time.Hour))
		}
		a := e.create(t, e.session(t, "alice", time.Hour), store.CreateOptions{MaxPerUser: 1})
		a2 := e.create(t, e.session(t, "carol", time.Hour), store.CreateOptions{MaxPerUser: 1, OnLimit: store.Refuse})
		e.requireUser(t, "alice", a)
		e.requireUser(t, "carol", a2)
		e.requireUser(t, "bob", bob...)
	})
}
