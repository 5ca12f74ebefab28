package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
)

func testGet(t *testing.T, newStore NewStore) {
	t.Run("NotFound", func(t *testing.T) {
		e := setup(t, newStore)
		e.add(t, "alice", time.Hour)
		e.requireNotFound(t, newID(t, "alice"))
		e.requireNotFound(t, newID(t, "bob"))
	})

	t.Run("MalformedID", func(t *testing.T) {
		e := setup(t, newStore)
		e.add(t, "alice", time.Hour)
		for name, id := range malformedIDs(t) {
			got, err := e.s.Get(e.ctx, id)
			require.ErrorIs(t, err, store.ErrNotFound, "Get(%s) = %v", name, got)
		}
	})

	t.Run("ReturnsCopies", func(t *testing.T) {
		e := setup(t, newStore)
		want := e.add(t, "alice", time.Hour)
		scribble := func(s *store.Session) {
			s.ID, s.UserID = "x", "mallory"
			s.User = json.RawMessage(`{"id":"mallory"}`) // replaced, never modified in place
			s.Device.Label = "changed"
			s.ExpiresAt = s.ExpiresAt.Add(time.Hour)
			s.CreatedAt = time.Time{}
		}
		scribble(e.get(t, want.ID))
		requireSession(t, want, e.get(t, want.ID), "Get after changing a returned session")

		list, err := e.s.List(e.ctx, "alice")
		require.NoError(t, err)
		require.Len(t, list, 1)
		scribble(list[0])
		e.requireUser(t, "alice", want)

		touched, err := e.s.Touch(e.ctx, want.ID, e.clk.Now(), want.ExpiresAt)
		require.NoError(t, err)
		want.LastSeenAt = ms(e.clk.Now())
		scribble(touched)
		e.requireUser(t, "alice", want)
	})
}

func testList(t *testing.T, newStore NewStore) {
	t.Run("MultiDevice", func(t *testing.T) {
		e := setup(t, newStore)
		now := e.clk.Now()
		// Created in an order that matches neither CreatedAt nor ExpiresAt,
		// so a List sorted by insertion or expiry fails.
		mk := func(created, ttl time.Duration, label string) *store.Session {
			s := e.session(t, "alice", ttl)
			s.CreatedAt = now.Add(-created)
			s.Device.Label = label
			return e.create(t, s, store.CreateOptions{})
		}
		phone := mk(time.Hour, time.Hour, "phone")
		laptop := mk(3*time.Hour, 3*time.Hour, "laptop")
		tablet := mk(2*time.Hour, 2*time.Hour, "tablet")
		bob := e.add(t, "bob", time.Hour)

		e.requireUser(t, "alice", laptop, tablet, phone)
		e.requireUser(t, "bob", bob)
	})

	t.Run("UnknownUser", func(t *testing.T) {
		e := setup(t, newStore)
		e.add(t, "alice", time.Hour)
		list, err := e.s.List(e.ctx, "nobody")
		require.NoError(t, err)
		require.Empty(t, list)
		n, err := e.s.Count(e.ctx, "nobody")
		require.NoError(t, err)
		require.Zero(t, n)
	})

	// The contract does not say whether reads by an invalid user ID are
	// ErrInvalid or simply find nothing; either is fine, anything else not.
	t.Run("InvalidUserID", func(t *testing.T) {
		e := setup(t, newStore)
		alice := e.add(t, "alice", time.Hour)
		for _, userID := range []string{"", "ali\x00ce", string(make([]byte, store.MaxUserIDLen+1))} {
			list, err := e.s.List(e.ctx, userID)
			require.True(t, err == nil && len(list) == 0 || isInvalid(err), "List(%q) = %v, %v", userID, ids(list), err)
			n, err := e.s.Count(e.ctx, userID)
			require.True(t, err == nil && n == 0 || isInvalid(err), "Count(%q) = %d, %v", userID, n, err)
			n, err = e.s.DeleteUser(e.ctx, userID)
			require.True(t, err == nil && n == 0 || isInvalid(err), "DeleteUser(%q) = %d, %v", userID, n, err)
			n, err = e.s.UpdateUser(e.ctx, userID, json.RawMessage(`{}`))
			require.True(t, err == nil && n == 0 || isInvalid(err), "UpdateUser(%q) = %d, %v", userID, n, err)
		}
		e.requireUser(t, "alice", alice)
	})
}

func isInvalid(err error) bool {
	return errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrTooLarge)
}

func mustList(t *testing.T, e *env, userID string) []*store.Session {
	t.Helper()
	list, err := e.s.List(e.ctx, userID)
	require.NoError(t, err)
	return list
}

func testExpiry(t *testing.T, newStore NewStore) {
	// expired sets up alice with one session that has just expired (the
	// clock sits exactly on its ExpiresAt) and one that lives on.
	expired := func(t *testing.T) (e *env, gone, live *store.Session) {
		e = setup(t, newStore)
		gone = e.add(t, "alice", time.Hour)
		live = e.add(t, "alice", 2*time.Hour)
		e.clk.Set(gone.ExpiresAt.Add(-time.Millisecond))
		requireSession(t, gone, e.get(t, gone.ID), "Get 1ms before expiry")
		e.clk.Set(gone.ExpiresAt)
		return e, gone, live
	}

	t.Run("Get", func(t *testing.T) {
		e, gone, live := expired(t)
		e.requireNotFound(t, gone.ID)
		requireSession(t, live, e.get(t, live.ID), "Get(live)")
	})

	t.Run("ListCount", func(t *testing.T) {
		e, _, live := expired(t)
		e.requireUser(t, "alice", live)
	})

	t.Run("Touch", func(t *testing.T) {
		e, gone, live := expired(t)
		_, err := e.s.Touch(e.ctx, gone.ID, e.clk.Now(), e.clk.Now().Add(time.Hour))
		require.ErrorIs(t, err, store.ErrNotFound, "Touch must not revive an expired session")
		e.requireNotFound(t, gone.ID)
		e.requireUser(t, "alice", live)
	})

	t.Run("UpdateUser", func(t *testing.T) {
		e, gone, live := expired(t)
		n, err := e.s.UpdateUser(e.ctx, "alice", json.RawMessage(`{"v":2}`))
		require.NoError(t, err)
		require.Equal(t, 1, n, "UpdateUser counted an expired session")
		e.requireNotFound(t, gone.ID)
		live.User, live.UpdatedAt = json.RawMessage(`{"v":2}`), ms(e.clk.Now())
		e.requireUser(t, "alice", live)
	})

	t.Run("DeleteUser", func(t *testing.T) {
		e, gone, live := expired(t)
		n, err := e.s.DeleteUser(e.ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, 1, n, "DeleteUser counted an expired session")
		e.requireNotFound(t, gone.ID)
		e.requireNotFound(t, live.ID)
		e.requireUser(t, "alice")
	})

	t.Run("Delete", func(t *testing.T) {
		e, gone, live := expired(t)
		require.NoError(t, e.s.Delete(e.ctx, gone.ID))
		e.requireUser(t, "alice", live)
	})

	// RealTTL runs on the real clock with a short TTL, so that a backend
	// whose server expires keys on its own is exercised: the server's TTL
	// and the store's bookkeeping must agree, and Touch must move both.
	t.Run("RealTTL", func(t *testing.T) {
		const ttl = 300 * time.Millisecond
		s := newStore(t, time.Now)
		e := &env{s: s, clk: nil, ctx: t.Context()}
		mk := func() *store.Session {
			sess := &store.Session{ID: newID(t, "alice"), UserID: "alice", User: json.RawMessage(`{}`), ExpiresAt: time.Now().Add(ttl)}
			_, err := s.Create(e.ctx, sess, store.CreateOptions{})
			require.NoError(t, err)
			return sess
		}
		var extended, touched *store.Session
		for attempt := 0; touched == nil; attempt++ {
			extended = mk()
			var err error
			touched, err = s.Touch(e.ctx, extended.ID, time.Now(), time.Now().Add(time.Minute))
			if err != nil && time.Now().After(extended.ExpiresAt) && attempt < 3 {
				continue // the machine was too slow to Touch within the TTL
			}
			require.NoError(t, err)
		}
		short := mk()
		if time.Until(short.ExpiresAt) > 50*time.Millisecond {
			// Only meaningful while the machine is not too slow to get here.
			_, err := s.Get(e.ctx, short.ID)
			require.NoError(t, err, "Get before the TTL")
		}
		time.Sleep(time.Until(short.ExpiresAt) + 100*time.Millisecond)
		e.requireNotFound(t, short.ID)
		_, err := s.Touch(e.ctx, short.ID, time.Now(), time.Now().Add(time.Minute))
		require.ErrorIs(t, err, store.ErrNotFound)
		e.requireUser(t, "alice", touched)

		// The index must not keep the expired session counted either.
		again := mk()
		list := mustList(t, e, "alice")
		require.ElementsMatch(t, []string{extended.ID, again.ID}, ids(list))
		n, err := s.DeleteUser(e.ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, 2, n)
		e.requireUser(t, "alice")
	})
}

func testTouch(t *testing.T, newStore NewStore) {
	t.Run("Moves", func(t *testing.T) {
		e := setup(t, newStore)
		s := e.add(t, "alice", time.Hour)
		e.clk.Advance(10*time.Minute + 123456*time.Nanosecond)
		lastSeen := e.clk.Now()
		exp := lastSeen.Add(2*time.Hour + 654321*time.Nanosecond)
		got, err := e.s.Touch(e.ctx, s.ID, lastSeen, exp)
		require.NoError(t, err)
		want := *s
		want.LastSeenAt, want.ExpiresAt = ms(lastSeen), ms(exp)
		requireSession(t, &want, got, "Touch result")
		e.requireUser(t, "alice", &want)

		// Past the old expiry the session lives on, until the new one.
		e.clk.Set(s.ExpiresAt.Add(time.Minute))
		requireSession(t, &want, e.get(t, s.ID), "Get past the old expiry")
		e.clk.Set(want.ExpiresAt)
		e.requireNotFound(t, s.ID)
		e.requireUser(t, "alice")
	})

	t.Run("CanShorten", func(t *testing.T) {
		e := setup(t, newStore)
		s := e.add(t, "alice", time.Hour)
		other := e.add(t, "alice", time.Hour)
		_, err := e.s.Touch(e.ctx, s.ID, e.clk.Now(), e.clk.Now().Add(time.Minute))
		require.NoError(t, err)
		e.clk.Advance(time.Minute)
		e.requireNotFound(t, s.ID)
		e.requireUser(t, "alice", other)
	})

	t.Run("NotFound", func(t *testing.T) {
		e := setup(t, newStore)
		s := e.add(t, "alice", time.Hour)
		now := e.clk.Now()
		_, err := e.s.Touch(e.ctx, newID(t, "alice"), now, now.Add(time.Hour))
		require.ErrorIs(t, err, store.ErrNotFound, "Touch(unknown)")
		for name, id := range malformedIDs(t) {
			_, err := e.s.Touch(e.ctx, id, now, now.Add(time.Hour))
			require.ErrorIs(t, err, store.ErrNotFound, "Touch(malformed %s)", name)
		}
		e.requireUser(t, "alice", s)
	})

	t.Run("Invalid", func(t *testing.T) {
		e := setup(t, newStore)
		s := e.add(t, "alice", time.Hour)
		now := e.clk.Now()
		for name, args := range map[string][2]time.Time{
			"ExpiryInPast": {now, now.Add(-time.Second)},
			"ExpiryNow":    {now, now},
			"ZeroExpiry":   {now, {}},
			"ZeroLastSeen": {{}, now.Add(time.Hour)},
		} {
			got, err := e.s.Touch(e.ctx, s.ID, args[0], args[1])
			require.ErrorIs(t, err, store.ErrInvalid, "Touch(%s) = %v", name, got)
			e.requireUser(t, "alice", s)
		}
	})
}
