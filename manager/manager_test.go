package manager_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/manager/jwtverify"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/memory"
)

var ctx = context.Background()

func newMemory(t testing.TB, now func() time.Time) store.Store {
	s := memory.New(memory.Options{Now: now, JanitorInterval: -1})
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConfigDefaults(t *testing.T) {
	m, err := manager.New(newMemory(t, nil), manager.Config{})
	require.NoError(t, err)
	cfg := m.Config()
	require.Equal(t, 30*24*time.Hour, cfg.MaxAge)
	require.Equal(t, 24*time.Hour, cfg.UpdateAge)
	require.Zero(t, cfg.AbsoluteMaxAge)
	require.Zero(t, cfg.IdleTimeout)
	require.Equal(t, store.EvictOldest, cfg.OnLimit)
	require.Equal(t, "__Host-session-token", m.CookieName())
	require.Equal(t, "__Host-access-token", m.AccessTokenCookieName())
	require.Equal(t, "__Host-refresh-token", m.RefreshTokenCookieName())

	c := m.SessionCookie("tok", cfg.Now().Add(cfg.MaxAge))
	require.True(t, c.Secure)
	require.True(t, c.HttpOnly)
	require.Equal(t, "/", c.Path)
	require.Empty(t, c.Domain)
	require.Equal(t, 2592000, c.MaxAge)

	dev, err := manager.New(newMemory(t, nil), manager.Config{Development: true, MaxAge: time.Hour})
	require.NoError(t, err)
	require.Equal(t, "session-token", dev.CookieName())
	require.Equal(t, 30*time.Minute, dev.Config().UpdateAge, "UpdateAge defaults to MaxAge/2 when shorter than 24h")
	require.False(t, dev.SessionCookie("tok", time.Now().Add(time.Hour)).Secure)
	require.Equal(t, "refresh-token", dev.RefreshTokenCookieName())

	strict, err := manager.New(newMemory(t, nil), manager.Config{Cookie: manager.CookieConfig{Name: "sid", SameSite: http.SameSiteStrictMode}})
	require.NoError(t, err)
	require.Equal(t, "__Host-sid", strict.CookieName())
	for _, c := range append(strict.ClearCookies(), strict.SessionCookie("tok", time.Now().Add(time.Hour))) {
		require.Equal(t, http.SameSiteStrictMode, c.SameSite, c.Name)
		require.True(t, c.Secure && c.HttpOnly, c.Name)
		require.Equal(t, "/", c.Path)
	}
}

func TestConfigInvalid(t *testing.T) {
	_, err := manager.New(nil, manager.Config{})
	require.ErrorContains(t, err, "nil store")

	for _, tc := range []struct {
		name string
		cfg  manager.Config
		want string
	}{
		{"negative MaxAge", manager.Config{MaxAge: -time.Hour}, "MaxAge"},
		{"UpdateAge over MaxAge", manager.Config{MaxAge: time.Hour, UpdateAge: 2 * time.Hour}, "UpdateAge"},
		{"negative UpdateAge", manager.Config{UpdateAge: -1}, "UpdateAge"},
		{"negative AbsoluteMaxAge", manager.Config{AbsoluteMaxAge: -1}, "AbsoluteMaxAge"},
		{"tiny IdleTimeout", manager.Config{IdleTimeout: time.Millisecond}, "IdleTimeout"},
		{"negative MaxSessionsPerUser", manager.Config{MaxSessionsPerUser: -1}, "MaxSessionsPerUser"},
		{"unknown OnLimit", manager.Config{OnLimit: 7}, "OnLimit"},
		{"cookie name with space", manager.Config{Cookie: manager.CookieConfig{Name: "my session"}}, "Cookie.Name"},
		{"cookie name with semicolon", manager.Config{AccessTokenCookie: "a;b"}, "AccessTokenCookie"},
		{"same cookie twice", manager.Config{RefreshTokenCookie: "access-token"}, "same cookie"},
		{"__Host- in development", manager.Config{Development: true, Cookie: manager.CookieConfig{Name: "__Host-s"}}, "Development"},
		{"SameSite=None in development", manager.Config{Development: true, Cookie: manager.CookieConfig{SameSite: http.SameSiteNoneMode}}, "SameSite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := manager.New(newMemory(t, nil), tc.cfg)
			require.Nil(t, m)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "manager: invalid config")
		})
	}
}

func TestCreateLookup(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{})
		user := json.RawMessage(`{"id":"u1","name":"Ada"}`)
		dev := store.Device{UserAgent: "Firefox", IP: "192.0.2.1", Label: "laptop"}
		tok, s, err := e.m.CreateSession(ctx, "u1", user, dev)
		require.NoError(t, err)
		require.Len(t, tok, store.TokenLen)
		id, err := store.IDFromToken(tok)
		require.NoError(t, err)
		require.Equal(t, id, s.ID)
		require.Equal(t, e.clock.Now().Add(30*24*time.Hour), s.ExpiresAt)

		got, err := e.m.Lookup(ctx, tok)
		require.NoError(t, err)
		require.Equal(t, s.ID, got.ID)
		require.Equal(t, "u1", got.UserID)
		require.JSONEq(t, string(user), string(got.User))
		require.Equal(t, dev, got.Device)
		require.True(t, s.ExpiresAt.Equal(got.ExpiresAt), "Lookup expiry = %v, want %v", got.ExpiresAt, s.ExpiresAt)

		// A malformed token never reaches the store.
		before := e.store.calls()
		for _, bad := range []string{"", "short", strings.Repeat("A", store.TokenLen+1), strings.Repeat("!", store.TokenLen), strings.Repeat(".", 1<<20)} {
			_, err := e.m.Lookup(ctx, bad)
			require.ErrorIs(t, err, manager.ErrNoSession)
			_, _, err = e.m.Touch(ctx, bad)
			require.ErrorIs(t, err, manager.ErrNoSession)
		}
		require.Equal(t, before, e.store.calls(), "malformed tokens reached the store")

		// A well-formed unknown token is looked up and not found.
		other, err := store.NewToken("u1")
		require.NoError(t, err)
		_, err = e.m.Lookup(ctx, other)
		require.ErrorIs(t, err, manager.ErrNoSession)

		// Bad input changes nothing.
		for _, tc := range []struct {
			user  string
			prof  json.RawMessage
			dev   store.Device
			isErr error
		}{
			{"", nil, store.Device{}, store.ErrInvalid},
			{"u1", json.RawMessage(`{not json`), store.Device{}, store.ErrInvalid},
			{"u1", nil, store.Device{IP: "not-an-ip"}, store.ErrInvalid},
			{"u1", json.RawMessage(`"` + strings.Repeat("x", store.MaxUserSize) + `"`), store.Device{}, store.ErrTooLarge},
		} {
			_, _, err := e.m.CreateSession(ctx, tc.user, tc.prof, tc.dev)
			require.ErrorIs(t, err, tc.isErr)
		}
		require.Equal(t, 1, e.count(t, "u1"))
		require.Equal(t, []string{"created"}, e.events.list())
	})
}

func TestSlidingExpiry(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{cfg: manager.Config{MaxAge: 24 * time.Hour, UpdateAge: time.Hour}})
		tok, s, err := e.m.CreateSession(ctx, "u1", nil, store.Device{})
		require.NoError(t, err)
		created := s.ExpiresAt

		e.clock.Advance(59 * time.Minute)
		got, extended, err := e.m.Touch(ctx, tok)
		require.NoError(t, err)
		require.False(t, extended)
		require.True(t, got.ExpiresAt.Equal(created))
		require.Zero(t, e.store.touches.Load(), "Touch before UpdateAge wrote to the store")

		e.clock.Advance(time.Minute)
		got, extended, err = e.m.Touch(ctx, tok)
		require.NoError(t, err)
		require.True(t, extended)
		require.True(t, got.ExpiresAt.Equal(e.clock.Now().Add(24*time.Hour)), "expiry = %v, want now+MaxAge", got.ExpiresAt)
		require.Equal(t, int64(1), e.store.touches.Load())

		// Lookup never slides.
		e.clock.Advance(2 * time.Hour)
		_, err = e.m.Lookup(ctx, tok)
		require.NoError(t, err)
		require.Equal(t, int64(1), e.store.touches.Load())

		// Past MaxAge since the last extension the session is gone.
		e.clock.Advance(22 * time.Hour)
		_, _, err = e.m.Touch(ctx, tok)
		require.ErrorIs(t, err, manager.ErrNoSession)
	})
}

func TestAbsoluteMaxAge(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{cfg: manager.Config{MaxAge: 24 * time.Hour, UpdateAge: time.Hour, AbsoluteMaxAge: 30 * time.Hour}})
		t0 := e.clock.Now()
		tok, _, err := e.m.CreateSession(ctx, "u1", nil, store.Device{})
		require.NoError(t, err)

		e.clock.Advance(2 * time.Hour)
		s, extended, err := e.m.Touch(ctx, tok)
		require.NoError(t, err)
		require.True(t, extended)
		require.True(t, s.ExpiresAt.Equal(t0.Add(26*time.Hour)))

		e.clock.Set(t0.Add(10 * time.Hour))
		s, extended, err = e.m.Touch(ctx, tok)
		require.NoError(t, err)
		require.True(t, extended)
		require.True(t, s.ExpiresAt.Equal(t0.Add(30*time.Hour)), "expiry = %v, want the absolute cap", s.ExpiresAt)
		writes := e.store.touches.Load()

		// Capped: the expiry cannot move, so nothing is written.
		e.clock.Set(t0.Add(20 * time.Hour))
		_, extended, err = e.m.Touch(ctx, tok)
		require.NoError(t, err)
		require.False(t, extended)
		require.Equal(t, writes, e.store.touches.Load())

		e.clock.Set(t0.Add(30 * time.Hour))
		_, _, err = e.m.Touch(ctx, tok)
		require.ErrorIs(t, err, manager.ErrNoSession)
	})
}

func TestIdleTimeout(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{cfg: manager.Config{MaxAge: 24 * time.Hour, IdleTimeout: 10 * time.Minute}})
		tok, _, err := e.m.CreateSession(ctx, "u1", nil, store.Device{})
		require.NoError(t, err)

		// LastSeenAt is written every IdleTimeout/10, without moving the
		// expiry (UpdateAge is 12h here).
		e.clock.Advance(59 * time.Second)
		_, extended, err := e.m.Touch(ctx, tok)
		require.NoError(t, err)
		require.False(t, extended)
		require.Zero(t, e.store.touches.Load())
		e.clock.Advance(time.Second)
		s, extended, err := e.m.Touch(ctx, tok)
		require.NoError(t, err)
		require.False(t, extended)
		require.Equal(t, int64(1), e.store.touches.Load())
		require.True(t, s.LastSeenAt.Equal(e.clock.Now()))

		// Used just before the timeout: alive.
		e.clock.Advance(10*time.Minute - time.Millisecond)
		_, _, err = e.m.Touch(ctx, tok)
		require.NoError(t, err)

		// Unused for IdleTimeout: dead, and deleted from the store.
		e.clock.Advance(10 * time.Minute)
		_, _, err = e.m.Touch(ctx, tok)
		require.ErrorIs(t, err, manager.ErrNoSession)
		require.Zero(t, e.count(t, "u1"))
		require.Contains(t, e.events.list(), "revoked:idle")
	})
}

func TestMaxSessionsPerUser(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		t.Run("evict oldest", func(t *testing.T) {
			e := newEnv(t, newStore, envOptions{cfg: manager.Config{MaxSessionsPerUser: 2}})
			var toks []string
			for range 3 {
				tok, _, err := e.m.CreateSession(ctx, "u1", nil, store.Device{})
				require.NoError(t, err)
				toks = append(toks, tok)
				e.clock.Advance(time.Second)
			}
			require.Equal(t, 2, e.count(t, "u1"))
			_, err := e.m.Lookup(ctx, toks[0])
			require.ErrorIs(t, err, manager.ErrNoSession)
			_, err = e.m.Lookup(ctx, toks[2])
			require.NoError(t, err)
			require.Contains(t, e.events.list(), "revoked:evicted")
		})
		t.Run("refuse", func(t *testing.T) {
			e := newEnv(t, newStore, envOptions{cfg: manager.Config{MaxSessionsPerUser: 2, OnLimit: store.Refuse}})
			for range 2 {
				_, _, err := e.m.CreateSession(ctx, "u1", nil, store.Device{})
				require.NoError(t, err)
			}
			_, _, err := e.m.CreateSession(ctx, "u1", nil, store.Device{})
			require.ErrorIs(t, err, store.ErrTooManySessions)
			require.Equal(t, 2, e.count(t, "u1"))
		})
		t.Run("idle sessions do not count", func(t *testing.T) {
			e := newEnv(t, newStore, envOptions{cfg: manager.Config{MaxSessionsPerUser: 1, OnLimit: store.Refuse, IdleTimeout: time.Hour}})
			_, _, err := e.m.CreateSession(ctx, "u1", nil, store.Device{})
			require.NoError(t, err)
			e.clock.Advance(time.Hour)
			_, _, err = e.m.CreateSession(ctx, "u1", nil, store.Device{})
			require.NoError(t, err)
			require.Equal(t, 1, e.count(t, "u1"))
		})
	})
}

func TestUserSessions(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{})
		a1, _, err := e.m.CreateSession(ctx, "alice", json.RawMessage(`{"name":"A"}`), store.Device{UserAgent: "phone"})
		require.NoError(t, err)
		e.clock.Advance(time.Second)
		a2, _, err := e.m.CreateSession(ctx, "alice", json.RawMessage(`{"name":"A"}`), store.Device{UserAgent: "laptop"})
		require.NoError(t, err)
		b1, _, err := e.m.CreateSession(ctx, "bob", nil, store.Device{})
		require.NoError(t, err)

		n, err := e.m.UpdateSession(ctx, "alice", json.RawMessage(`{"name":"Alice"}`))
		require.NoError(t, err)
		require.Equal(t, 2, n)
		s, err := e.m.Lookup(ctx, a2)
		require.NoError(t, err)
		require.JSONEq(t, `{"name":"Alice"}`, string(s.User))

		list, err := e.m.GetUserSessions(ctx, "alice")
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.Equal(t, "phone", list[0].Device.UserAgent)
		require.Equal(t, "laptop", list[1].Device.UserAgent)
		out, err := json.Marshal(list)
		require.NoError(t, err)
		require.NotContains(t, string(out), a1)
		require.NotContains(t, string(out), a2)

		// Bad input changes nothing.
		_, err = e.m.UpdateSession(ctx, "alice", json.RawMessage(`{"name":`))
		require.ErrorIs(t, err, store.ErrInvalid)
		_, err = e.m.UpdateSession(ctx, "", json.RawMessage(`{}`))
		require.ErrorIs(t, err, store.ErrInvalid)
		_, err = e.m.InvalidateUserSessions(ctx, "")
		require.ErrorIs(t, err, store.ErrInvalid)
		_, err = e.m.GetUserSessions(ctx, "")
		require.ErrorIs(t, err, store.ErrInvalid)
		s, err = e.m.Lookup(ctx, a1)
		require.NoError(t, err)
		require.JSONEq(t, `{"name":"Alice"}`, string(s.User))

		n, err = e.m.InvalidateUserSessions(ctx, "alice")
		require.NoError(t, err)
		require.Equal(t, 2, n)
		for _, tok := range []string{a1, a2} {
			_, err := e.m.Lookup(ctx, tok)
			require.ErrorIs(t, err, manager.ErrNoSession)
		}
		_, err = e.m.Lookup(ctx, b1)
		require.NoError(t, err, "another user's session survived")
		list, err = e.m.GetUserSessions(ctx, "alice")
		require.NoError(t, err)
		require.Empty(t, list)
		require.Contains(t, e.events.list(), "invalidated")
	})
}

func TestRevoke(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{})
		a1, s1, err := e.m.CreateSession(ctx, "alice", nil, store.Device{})
		require.NoError(t, err)
		a2, s2, err := e.m.CreateSession(ctx, "alice", nil, store.Device{})
		require.NoError(t, err)
		b1, sb, err := e.m.CreateSession(ctx, "bob", nil, store.Device{})
		require.NoError(t, err)

		// Alice cannot revoke Bob's session, nor a made-up one.
		require.ErrorIs(t, e.m.RevokeSession(ctx, "alice", sb.ID), manager.ErrNoSession)
		require.ErrorIs(t, e.m.RevokeSession(ctx, "alice", "not-an-id"), manager.ErrNoSession)
		require.ErrorIs(t, e.m.RevokeSession(ctx, "alice", strings.Repeat("x", 1<<20)), manager.ErrNoSession)
		require.ErrorIs(t, e.m.RevokeSession(ctx, "", s1.ID), store.ErrInvalid)
		_, err = e.m.Lookup(ctx, b1)
		require.NoError(t, err)
		require.Zero(t, e.store.writes()-3, "a refused revoke wrote to the store")

		require.NoError(t, e.m.RevokeSession(ctx, "alice", s2.ID))
		_, err = e.m.Lookup(ctx, a2)
		require.ErrorIs(t, err, manager.ErrNoSession)
		_, err = e.m.Lookup(ctx, a1)
		require.NoError(t, err)
		require.ErrorIs(t, e.m.RevokeSession(ctx, "alice", s2.ID), manager.ErrNoSession, "revoking twice")

		require.NoError(t, e.m.RevokeToken(ctx, a1))
		require.ErrorIs(t, e.m.RevokeToken(ctx, a1), manager.ErrNoSession)
		require.ErrorIs(t, e.m.RevokeToken(ctx, "garbage"), manager.ErrNoSession)
		require.Zero(t, e.count(t, "alice"))
		_ = s1
		require.Equal(t, []string{"created", "created", "created", "revoked:revoked", "signout"}, e.events.list())
	})
}

// TestResolveChain walks the three steps with each signing algorithm.
func TestResolveChain(t *testing.T) {
	for _, alg := range []string{"HS256", "RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
				e := newEnv(t, newStore, envOptions{idpAlg: alg})
				dev := store.Device{UserAgent: "test", IP: "192.0.2.7"}

				// Step 2: a valid JWT makes a session from the upstream profile.
				at := e.idp.accessToken(t, "42")
				res, err := e.m.Resolve(ctx, manager.Credentials{AccessToken: at, Device: dev})
				require.NoError(t, err)
				require.Equal(t, manager.SourceAccessToken, res.Source)
				require.Equal(t, "jwt", res.Source.String())
				require.Equal(t, "42", res.Session.UserID)
				require.Equal(t, dev, res.Session.Device)
				require.Contains(t, string(res.Session.User), `"email":"42@example.com"`)
				require.NotEmpty(t, res.SessionToken)
				require.Len(t, res.Cookies, 1)
				require.Equal(t, e.m.CookieName(), res.Cookies[0].Name)
				require.Equal(t, res.SessionToken, res.Cookies[0].Value)
				require.Equal(t, 1, e.count(t, "42"))

				// Step 1: the new session token resolves from the store.
				res2, err := e.m.Resolve(ctx, manager.Credentials{SessionToken: res.SessionToken, AccessToken: at})
				require.NoError(t, err)
				require.Equal(t, manager.SourceSession, res2.Source)
				require.Equal(t, res.Session.ID, res2.Session.ID)
				require.Empty(t, res2.Cookies)
				require.Empty(t, res2.SessionToken)

				// Step 3: expired access token + refresh token.
				rt := e.idp.refreshToken("42")
				res3, err := e.m.Resolve(ctx, manager.Credentials{AccessToken: e.idp.expiredToken(t, "42"), RefreshToken: rt})
				require.NoError(t, err)
				require.Equal(t, manager.SourceRefresh, res3.Source)
				require.Equal(t, "42", res3.Session.UserID)
				require.NotEmpty(t, res3.AccessToken)
				require.NotEmpty(t, res3.RefreshToken)
				require.NotEqual(t, rt, res3.RefreshToken)
				names := map[string]string{}
				for _, c := range res3.Cookies {
					names[c.Name] = c.Value
				}
				require.Equal(t, map[string]string{
					e.m.CookieName():             res3.SessionToken,
					e.m.AccessTokenCookieName():  res3.AccessToken,
					e.m.RefreshTokenCookieName(): res3.RefreshToken,
				}, names)
				require.Equal(t, 2, e.count(t, "42"))
				require.Equal(t, int64(1), e.idp.refreshCalls.Load())

				// The refresh token was single use; only a refresh token (the
				// access cookie expired in the browser) works too.
				_, err = e.m.Resolve(ctx, manager.Credentials{RefreshToken: rt})
				require.ErrorIs(t, err, manager.ErrNoSession)
				res4, err := e.m.Resolve(ctx, manager.Credentials{RefreshToken: res3.RefreshToken})
				require.NoError(t, err)
				require.Equal(t, manager.SourceRefresh, res4.Source)

				// A stale session token does not hide a valid access token.
				require.NoError(t, e.m.RevokeToken(ctx, res.SessionToken))
				res5, err := e.m.Resolve(ctx, manager.Credentials{SessionToken: res.SessionToken, AccessToken: at})
				require.NoError(t, err)
				require.Equal(t, manager.SourceAccessToken, res5.Source)
				require.NotEqual(t, res.SessionToken, res5.SessionToken)
			})
		})
	}
}

// TestResolveRejects: every bad credential gets ErrNoSession and writes
// nothing to the store.
func TestResolveRejects(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{idpAlg: "RS256"})
		p := e.idp
		valid := p.accessToken(t, "42")
		parts := strings.Split(valid, ".")
		rsaPEM := p.pubPEM

		sign := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
			tok, err := jwt.NewWithClaims(m, c).SignedString(key)
			require.NoError(t, err)
			return tok
		}
		tamperedPayload := func() string {
			c := p.claims("1", 15*time.Minute) // a different user
			b, err := json.Marshal(c)
			require.NoError(t, err)
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
		}
		with := func(k string, v any) jwt.MapClaims {
			c := p.claims("42", 15*time.Minute)
			c[k] = v
			return c
		}
		noExp := p.claims("42", 15*time.Minute)
		delete(noExp, "exp")

		cases := []struct {
			name  string
			creds manager.Credentials
		}{
			{"nothing", manager.Credentials{}},
			{"malformed session token", manager.Credentials{SessionToken: "abc"}},
			{"unknown session token", manager.Credentials{SessionToken: must(store.NewToken("42"))}},
			{"tampered payload", manager.Credentials{AccessToken: tamperedPayload()}},
			{"tampered signature", manager.Credentials{AccessToken: parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))}},
			{"alg none", manager.Credentials{AccessToken: sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, p.claims("42", time.Hour))}},
			{"HS256 signed with the RSA public key", manager.Credentials{AccessToken: sign(jwt.SigningMethodHS256, rsaPEM, p.claims("42", time.Hour))}},
			{"expired without refresh token", manager.Credentials{AccessToken: p.expiredToken(t, "42")}},
			{"wrong issuer", manager.Credentials{AccessToken: p.sign(t, with("iss", "https://evil.test"))}},
			{"wrong audience", manager.Credentials{AccessToken: p.sign(t, with("aud", "someone-else"))}},
			{"no exp", manager.Credentials{AccessToken: p.sign(t, noExp)}},
			{"oversize: 1 MB of dots", manager.Credentials{AccessToken: strings.Repeat(".", 1<<20)}},
			{"oversize session token", manager.Credentials{SessionToken: strings.Repeat(".", 1<<20)}},
			{"tampered token with a refresh token", manager.Credentials{AccessToken: tamperedPayload(), RefreshToken: p.refreshToken("42")}},
			{"expired with a forged refresh token", manager.Credentials{AccessToken: p.expiredToken(t, "42"), RefreshToken: "rt-forged"}},
			{"garbage", manager.Credentials{AccessToken: "not a jwt", SessionToken: "\x00"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				writes, refreshes := e.store.writes(), p.refreshCalls.Load()
				res, err := e.m.Resolve(ctx, tc.creds)
				require.Nil(t, res)
				require.ErrorIs(t, err, manager.ErrNoSession)
				require.NotErrorIs(t, err, manager.ErrUnavailable)
				require.Equal(t, writes, e.store.writes(), "the store was written")
				require.Zero(t, e.count(t, "42"))
				require.Zero(t, e.count(t, "1"))
				if tc.creds.RefreshToken != "rt-forged" {
					require.Equal(t, refreshes, p.refreshCalls.Load(), "a refresh was attempted")
				}
				for _, secret := range []string{tc.creds.AccessToken, tc.creds.SessionToken, tc.creds.RefreshToken} {
					if len(secret) > 8 {
						require.NotContains(t, err.Error(), secret)
					}
				}
			})
		}

		t.Run("upstream user differs from the token's subject", func(t *testing.T) {
			p.mu.Lock()
			p.idOverride["42"] = "43"
			p.mu.Unlock()
			t.Cleanup(func() {
				p.mu.Lock()
				delete(p.idOverride, "42")
				p.mu.Unlock()
			})
			writes := e.store.writes()
			_, err := e.m.Resolve(ctx, manager.Credentials{AccessToken: valid})
			require.ErrorIs(t, err, manager.ErrNoSession)
			_, err = e.m.Resolve(ctx, manager.Credentials{AccessToken: p.expiredToken(t, "42"), RefreshToken: p.refreshToken("42")})
			require.ErrorIs(t, err, manager.ErrNoSession)
			require.Equal(t, writes, e.store.writes())
			require.Zero(t, e.count(t, "42"))
			require.Zero(t, e.count(t, "43"))
		})

		t.Run("JWT steps off without a verifier", func(t *testing.T) {
			m, err := manager.New(e.store, manager.Config{Now: e.clock.Now})
			require.NoError(t, err)
			_, err = m.Resolve(ctx, manager.Credentials{AccessToken: valid})
			require.ErrorIs(t, err, manager.ErrNoSession)
			require.Zero(t, e.count(t, "42"))
		})
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestResolveUnavailable(t *testing.T) {
	t.Run("store down", func(t *testing.T) {
		e := newEnv(t, newMemory, envOptions{idpAlg: "HS256"})
		tok, _, err := e.m.CreateSession(ctx, "42", nil, store.Device{})
		require.NoError(t, err)
		e.store.down.Store(true)
		_, err = e.m.Resolve(ctx, manager.Credentials{SessionToken: tok})
		require.ErrorIs(t, err, manager.ErrUnavailable)
		require.ErrorIs(t, err, store.ErrUnavailable)
		require.NotErrorIs(t, err, manager.ErrNoSession)
		// A down store is not a reason to fall through to the JWT step.
		calls := e.idp.userInfoCalls.Load()
		_, err = e.m.Resolve(ctx, manager.Credentials{SessionToken: tok, AccessToken: e.idp.accessToken(t, "42")})
		require.ErrorIs(t, err, manager.ErrUnavailable)
		require.Equal(t, calls, e.idp.userInfoCalls.Load())
		_, err = e.m.GetUserSessions(ctx, "42")
		require.ErrorIs(t, err, manager.ErrUnavailable)
	})
	t.Run("redis at a closed port", func(t *testing.T) {
		e := newEnv(t, deadRedisStore, envOptions{})
		_, err := e.m.Resolve(ctx, manager.Credentials{SessionToken: must(store.NewToken("42"))})
		require.ErrorIs(t, err, manager.ErrUnavailable)
		require.NotErrorIs(t, err, manager.ErrNoSession)
	})
	t.Run("upstream down", func(t *testing.T) {
		e := newEnv(t, newMemory, envOptions{idpAlg: "ES256"})
		e.idp.down.Store(true)
		_, err := e.m.Resolve(ctx, manager.Credentials{AccessToken: e.idp.accessToken(t, "42")})
		require.ErrorIs(t, err, manager.ErrUnavailable)
		_, err = e.m.Resolve(ctx, manager.Credentials{AccessToken: e.idp.expiredToken(t, "42"), RefreshToken: e.idp.refreshToken("42")})
		require.ErrorIs(t, err, manager.ErrUnavailable)
		require.Zero(t, e.store.writes())
	})
}

// TestRefreshSurvivesOutage: the upstream rotated the refresh token but the
// session could not be stored; the client's retry with its old refresh
// token gets the new tokens instead of a sign-out.
func TestRefreshSurvivesOutage(t *testing.T) {
	e := newEnv(t, newMemory, envOptions{idpAlg: "HS256"})
	creds := manager.Credentials{AccessToken: e.idp.expiredToken(t, "42"), RefreshToken: e.idp.refreshToken("42")}
	e.store.down.Store(true)
	_, err := e.m.Resolve(ctx, creds)
	require.ErrorIs(t, err, manager.ErrUnavailable)
	require.Equal(t, int64(1), e.idp.refreshCalls.Load())

	e.store.down.Store(false)
	res, err := e.m.Resolve(ctx, creds)
	require.NoError(t, err)
	require.Equal(t, manager.SourceRefresh, res.Source)
	require.NotEmpty(t, res.RefreshToken)
	require.Equal(t, int64(1), e.idp.refreshCalls.Load(), "the retry went to the upstream with a rotated token")
	require.Equal(t, []string{"refreshed", "created"}, e.events.list())

	// Held once: a second use of the old token goes to the upstream, which
	// refuses it.
	_, err = e.m.Resolve(ctx, creds)
	require.ErrorIs(t, err, manager.ErrNoSession)
	require.Equal(t, int64(2), e.idp.refreshCalls.Load())

	// Held for a minute only.
	creds.RefreshToken = e.idp.refreshToken("42")
	e.store.down.Store(true)
	_, err = e.m.Resolve(ctx, creds)
	require.ErrorIs(t, err, manager.ErrUnavailable)
	e.store.down.Store(false)
	e.clock.Advance(time.Minute)
	_, err = e.m.Resolve(ctx, creds)
	require.ErrorIs(t, err, manager.ErrNoSession)
}

// TestConcurrentRefresh: requests racing with the same expired access
// token and refresh token cause one upstream refresh and one session.
func TestConcurrentRefresh(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{idpAlg: "RS256"})
		e.idp.mu.Lock()
		e.idp.refreshDelay = 100 * time.Millisecond // keeps the first call in flight while the rest arrive
		e.idp.mu.Unlock()
		creds := manager.Credentials{AccessToken: e.idp.expiredToken(t, "42"), RefreshToken: e.idp.refreshToken("42")}

		const n = 8
		var wg sync.WaitGroup
		results := make([]*manager.Resolution, n)
		errs := make([]error, n)
		startGun := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-startGun
				results[i], errs[i] = e.m.Resolve(ctx, creds)
			})
		}
		close(startGun)
		wg.Wait()
		for i := range n {
			require.NoError(t, errs[i])
			require.Equal(t, results[0].Session.ID, results[i].Session.ID)
			require.Equal(t, results[0].RefreshToken, results[i].RefreshToken)
		}
		require.Equal(t, int64(1), e.idp.refreshCalls.Load())
		require.Equal(t, 1, e.count(t, "42"))
	})
}

// TestBearerOnlyClient: an API client that sends its bearer token on every
// request, without cookies, keeps one session instead of making one per
// request (which would evict the user's other devices under a cap).
func TestBearerOnlyClient(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{idpAlg: "RS256", cfg: manager.Config{MaxSessionsPerUser: 2, UpdateAge: 5 * time.Minute}})
		browser, _, err := e.m.CreateSession(ctx, "42", nil, store.Device{UserAgent: "browser"})
		require.NoError(t, err)

		at := e.idp.accessToken(t, "42")
		first, err := e.m.Resolve(ctx, manager.Credentials{AccessToken: at})
		require.NoError(t, err)
		require.NotEmpty(t, first.SessionToken)
		calls := e.idp.userInfoCalls.Load()
		for range 5 {
			res, err := e.m.Resolve(ctx, manager.Credentials{AccessToken: at})
			require.NoError(t, err)
			require.Equal(t, manager.SourceAccessToken, res.Source)
			require.Equal(t, first.Session.ID, res.Session.ID)
			require.Empty(t, res.SessionToken)
			require.Empty(t, res.Cookies)
		}
		require.Equal(t, calls, e.idp.userInfoCalls.Load())
		require.Equal(t, 2, e.count(t, "42"))
		_, err = e.m.Lookup(ctx, browser)
		require.NoError(t, err, "bearer requests evicted the browser's session")

		// The remembered session slides like any other.
		e.clock.Advance(5 * time.Minute)
		res, err := e.m.Resolve(ctx, manager.Credentials{AccessToken: at})
		require.NoError(t, err)
		require.True(t, res.Session.ExpiresAt.Equal(e.clock.Now().Add(30*24*time.Hour)))

		// Revoked: the still-valid token makes a new session.
		require.NoError(t, e.m.RevokeSession(ctx, "42", first.Session.ID))
		again, err := e.m.Resolve(ctx, manager.Credentials{AccessToken: at})
		require.NoError(t, err)
		require.NotEqual(t, first.Session.ID, again.Session.ID)
		require.NotEmpty(t, again.SessionToken)

		// Once the token expires it resolves nothing, remembered or not.
		e.clock.Advance(time.Hour)
		_, err = e.m.Resolve(ctx, manager.Credentials{AccessToken: at})
		require.ErrorIs(t, err, manager.ErrNoSession)
	})
}

func TestHooks(t *testing.T) {
	e := newEnv(t, newMemory, envOptions{idpAlg: "HS256", cfg: manager.Config{MaxSessionsPerUser: 1}})
	_, err := e.m.Resolve(ctx, manager.Credentials{AccessToken: e.idp.expiredToken(t, "7"), RefreshToken: e.idp.refreshToken("7")})
	require.NoError(t, err)
	e.clock.Advance(time.Second) // a new token, not the refreshed one
	_, err = e.m.Resolve(ctx, manager.Credentials{AccessToken: e.idp.accessToken(t, "7")})
	require.NoError(t, err)
	_, err = e.m.InvalidateUserSessions(ctx, "7")
	require.NoError(t, err)
	require.Equal(t, []string{"refreshed", "created", "created", "revoked:evicted", "invalidated"}, e.events.list())
}

// TestErrorsAreDistinct: jwtverify's two outcomes stay apart, which the
// chain relies on.
func TestErrorsAreDistinct(t *testing.T) {
	require.False(t, errors.Is(jwtverify.ErrExpired, jwtverify.ErrInvalid))
	require.False(t, errors.Is(manager.ErrNoSession, manager.ErrUnavailable))
}
