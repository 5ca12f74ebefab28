package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
)

func testCreate(t *testing.T, newStore NewStore) {
	t.Run("RoundTrip", func(t *testing.T) {
		e := setup(t, newStore)
		now := e.clk.Now()
		s := &store.Session{
			ID:     newID(t, "alice"),
			UserID: "alice",
			User:   []byte(`{"id":"alice","name":"Alice Ängström","roles":["admin","reader"],"age":41.5,"nested":{"ok":true,"none":null}}`),
			Device: store.Device{UserAgent: "curl/8.5.0", IP: "2001:db8::1", Label: "Büro-Laptop ✓"},
			// Sub-millisecond parts that the store must drop.
			CreatedAt:  now.Add(-time.Hour - 123456*time.Nanosecond),
			UpdatedAt:  now.Add(-30*time.Minute + 789*time.Nanosecond),
			LastSeenAt: now.Add(-time.Minute + 999999*time.Nanosecond),
			ExpiresAt:  now.Add(30*24*time.Hour + 456789*time.Nanosecond),
		}
		want := *s
		want.CreatedAt, want.UpdatedAt = ms(s.CreatedAt), ms(s.UpdatedAt)
		want.LastSeenAt, want.ExpiresAt = ms(s.LastSeenAt), ms(s.ExpiresAt)

		evicted, err := e.s.Create(e.ctx, s, store.CreateOptions{})
		require.NoError(t, err)
		require.Empty(t, evicted)
		requireSession(t, &want, e.get(t, s.ID), "Get")
		e.requireUser(t, "alice", &want)
	})

	t.Run("ZeroTimesAreNow", func(t *testing.T) {
		e := setup(t, newStore)
		s := e.session(t, "alice", time.Hour)
		s.User, s.Device = nil, store.Device{}
		e.create(t, s, store.CreateOptions{})
		got := e.get(t, s.ID)
		now := ms(e.clk.Now())
		for name, v := range map[string]time.Time{"CreatedAt": got.CreatedAt, "UpdatedAt": got.UpdatedAt, "LastSeenAt": got.LastSeenAt} {
			require.True(t, now.Equal(v), "%s = %v, want now (%v)", name, v, now)
		}
		require.Empty(t, got.User)
		require.Equal(t, store.Device{}, got.Device)
	})

	t.Run("AtLimits", func(t *testing.T) {
		e := setup(t, newStore)
		userID := strings.Repeat("u", store.MaxUserIDLen)
		s := e.session(t, "alice", time.Hour)
		s.UserID, s.ID = userID, withTag(s.ID, store.UserTag(userID))
		s.User = jsonOfSize(store.MaxUserSize)
		s.Device.UserAgent = strings.Repeat("a", store.MaxUserAgentLen)
		s.Device.Label = strings.Repeat("l", store.MaxLabelLen)
		want := e.create(t, s, store.CreateOptions{})
		e.requireUser(t, userID, want)
	})

	t.Run("DuplicateID", func(t *testing.T) {
		e := setup(t, newStore)
		first := e.add(t, "alice", time.Hour)
		dup := e.session(t, "alice", 2*time.Hour)
		dup.ID = first.ID
		dup.Device.Label = "someone else"
		for _, opts := range []store.CreateOptions{{}, {MaxPerUser: 1}, {MaxPerUser: 1, OnLimit: store.Refuse}} {
			evicted, err := e.s.Create(e.ctx, dup, opts)
			require.ErrorIs(t, err, store.ErrExists, "Create(duplicate, %+v)", opts)
			require.Empty(t, evicted, "a refused Create evicted sessions")
			e.requireUser(t, "alice", first)
		}
	})

	t.Run("InputNotRetained", func(t *testing.T) {
		e := setup(t, newStore)
		s := e.session(t, "alice", time.Hour)
		want := e.create(t, s, store.CreateOptions{})
		// The caller may reuse its buffers after Create.
		for i := range s.User {
			s.User[i] = ' '
		}
		s.Device.Label = "changed"
		s.ExpiresAt = s.ExpiresAt.Add(time.Hour)
		requireSession(t, want, e.get(t, s.ID), "Get after the caller reused its session")
	})

	t.Run("Invalid", func(t *testing.T) {
		type tc struct {
			name string
			want error
			bad  func(t *testing.T, e *env, s *store.Session) *store.Session
		}
		cases := []tc{
			{"NilSession", store.ErrInvalid, func(*testing.T, *env, *store.Session) *store.Session { return nil }},
			{"EmptyUserID", store.ErrInvalid, func(_ *testing.T, _ *env, s *store.Session) *store.Session {
				s.UserID = ""
				return s
			}},
			{"OversizeUserID", store.ErrTooLarge, func(_ *testing.T, _ *env, s *store.Session) *store.Session {
				s.UserID = strings.Repeat("u", store.MaxUserIDLen+1)
				s.ID = withTag(s.ID, store.UserTag(s.UserID))
				return s
			}},
			{"ControlCharInUserID", store.ErrInvalid, func(_ *testing.T, _ *env, s *store.Session) *store.Session {
				s.UserID = "ali\nce"
				s.ID = withTag(s.ID, store.UserTag(s.UserID))
				return s
			}},
			{"IDOfAnotherUser", store.ErrInvalid, func(t *testing.T, _ *env, s *store.Session) *store.Session {
				s.ID = newID(t, "bob")
				return s
			}},
			{"InvalidUserJSON", store.ErrInvalid, func(_ *testing.T, _ *env, s *store.Session) *store.Session {
				s.User = []byte(`{"id":"alice",`)
				return s
			}},
			{"UserJSONTrailingGarbage", store.ErrInvalid, func(_ *testing.T, _ *env, s *store.Session) *store.Session {
				s.User = []byte(`{"id":"alice"} x`)
				return s
			}},
			{"OversizeUser", store.ErrTooLarge, func(_ *testing.T, _ *env, s *store.Session) *store.Session {
				s.User = jsonOfSize(store.MaxUserSize + 1)
				return s
			}},
			{"OversizeUserAgent", store.ErrTooLarge, func(_ *testing.T, _ *env, s *store.Session) *store.Session {
				s.Device.UserAgent = strings.Repeat("a", store.MaxUserAgentLen+1)
				return s
			}},
			{"OversizeLabel", store.ErrTooLarge, func(_ *testing.T, _ *env, s *store.Session) *store.Session {
				s.Device.Label = strings.Repeat("l", store.MaxLabelLen+1)
				return s
			}},
			{"ControlCharInLabel", store.ErrInvalid, func(_ *testing.T, _ *env, s *store.Session) *store.Session {
				s.Device.Label = "tab\there"
				return s
			}},
			{"BadIP", store.ErrInvalid, func(_ *testing.T, _ *env, s *store.Session) *store.Session {
				s.Device.IP = "300.1.2.3"
				return s
			}},
			{"ExpiryInPast", store.ErrInvalid, func(_ *testing.T, e *env, s *store.Session) *store.Session {
				s.ExpiresAt = e.clk.Now().Add(-time.Second)
				return s
			}},
			{"ExpiryNow", store.ErrInvalid, func(_ *testing.T, e *env, s *store.Session) *store.Session {
				s.ExpiresAt = e.clk.Now()
				return s
			}},
			{"ZeroExpiry", store.ErrInvalid, func(_ *testing.T, _ *env, s *store.Session) *store.Session {
				s.ExpiresAt = time.Time{}
				return s
			}},
		}
		for name, id := range malformedIDs(t) {
			cases = append(cases, tc{"MalformedID/" + name, store.ErrInvalid, func(_ *testing.T, _ *env, s *store.Session) *store.Session {
				s.ID = id
				return s
			}})
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e := setup(t, newStore)
				// The user's other session must survive the rejected call.
				other := e.add(t, "alice", time.Hour)
				bad := c.bad(t, e, e.session(t, "alice", time.Hour))
				for _, opts := range []store.CreateOptions{{}, {MaxPerUser: 1}} {
					evicted, err := e.s.Create(e.ctx, bad, opts)
					require.ErrorIs(t, err, c.want, "Create(%s, %+v)", c.name, opts)
					require.Empty(t, evicted, "a rejected Create evicted sessions")
				}
				if bad != nil && bad.ID != "" {
					e.requireNotFound(t, bad.ID)
				}
				e.requireUser(t, "alice", other)
				e.requireUser(t, "bob")
				if bad != nil && store.ValidateUserID(bad.UserID) == nil && bad.UserID != "alice" {
					e.requireUser(t, bad.UserID)
				}
			})
		}
	})
}
