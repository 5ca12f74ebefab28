package manager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/manager/jwtverify"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/storetest"
)

// panickingHooks is a Hooks whose every hook records its call and panics.
type panickingHooks struct {
	mu    sync.Mutex
	calls []string
}

func (p *panickingHooks) hook(name string) func(context.Context, manager.Event) {
	return func(_ context.Context, e manager.Event) {
		p.mu.Lock()
		p.calls = append(p.calls, name)
		p.mu.Unlock()
		panic(fmt.Sprintf("audit sink down in %s for %s", name, e.UserID))
	}
}

func (p *panickingHooks) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func (p *panickingHooks) hooks() manager.Hooks {
	return manager.Hooks{
		SignIn:         p.hook("SignIn"),
		SignOut:        p.hook("SignOut"),
		SessionCreated: p.hook("SessionCreated"),
		SessionRevoked: p.hook("SessionRevoked"),
		Refreshed:      p.hook("Refreshed"),
		Invalidated:    p.hook("Invalidated"),
	}
}

// TestHookPanicIsContained: hooks that panic do not turn completed
// operations into failures: SignIn (including the replaced-session
// revocation before it), the JWT and refresh steps of the resolve chain
// (whose hooks run inside the merged flight, where a panic used to be
// re-raised on a goroutine of its own and end the process), SignOut and
// InvalidateUserSessions all succeed, their effects are in the store, and
// each panic is logged at Error with the hook's name and no token.
func TestHookPanicIsContained(t *testing.T) {
	clock := storetest.NewClock(start())
	st := &countingStore{Store: newMemory(t, clock.Now)}
	logs := &syncBuffer{}
	p := newIdP(t, "HS256", clock)
	ph := &panickingHooks{}
	m, err := manager.New(st, manager.Config{
		Now:      clock.Now,
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Hooks:    ph.hooks(),
		JWT:      p.verifier(t, jwtverify.Config{}),
		Upstream: p.client(t),
	})
	require.NoError(t, err)
	var secrets []string

	// SignIn over an old session: SessionRevoked ("replaced"),
	// SessionCreated and SignIn all panic.
	old, _, err := m.CreateSession(ctx, "alice", nil, store.Device{})
	require.NoError(t, err)
	secrets = append(secrets, old)
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/login", nil)
	r.AddCookie(&http.Cookie{Name: m.CookieName(), Value: old})
	s, err := m.SignIn(ctx, w, r, "alice", json.RawMessage(`{"name":"Alice"}`), store.Device{})
	require.NoError(t, err, "a panicking hook failed SignIn")
	require.NotNil(t, s)
	ck := cookieNamed(w.Result().Cookies(), m.CookieName())
	require.NotNil(t, ck, "SignIn did not set the session cookie")
	secrets = append(secrets, ck.Value)
	got, err := m.Lookup(ctx, ck.Value)
	require.NoError(t, err, "the signed-in session is not in the store")
	require.Equal(t, s.ID, got.ID)
	_, err = m.Lookup(ctx, old)
	require.ErrorIs(t, err, manager.ErrNoSession, "the replaced session survived")

	// The JWT step: SessionCreated panics inside the merged flight.
	at := p.accessToken(t, "42")
	secrets = append(secrets, at)
	res, err := m.Resolve(ctx, manager.Credentials{AccessToken: at})
	require.NoError(t, err, "a panicking hook failed the JWT step")
	secrets = append(secrets, res.SessionToken)
	_, err = m.Lookup(ctx, res.SessionToken)
	require.NoError(t, err)

	// The refresh step: Refreshed and SessionCreated panic.
	rt, exp := p.refreshToken("43"), p.expiredToken(t, "43")
	secrets = append(secrets, rt, exp)
	res, err = m.Resolve(ctx, manager.Credentials{AccessToken: exp, RefreshToken: rt})
	require.NoError(t, err, "a panicking hook failed the refresh step")
	require.NotEmpty(t, res.AccessToken)
	secrets = append(secrets, res.SessionToken, res.AccessToken)
	_, err = m.Lookup(ctx, res.SessionToken)
	require.NoError(t, err)

	// SignOut: the session is gone and the cookies cleared.
	w = httptest.NewRecorder()
	r = httptest.NewRequest("POST", "/logout", nil)
	r.AddCookie(&http.Cookie{Name: m.CookieName(), Value: res.SessionToken})
	require.NoError(t, m.SignOut(w, r), "a panicking hook failed SignOut")
	_, err = m.Lookup(ctx, res.SessionToken)
	require.ErrorIs(t, err, manager.ErrNoSession)
	require.NotNil(t, cookieNamed(w.Result().Cookies(), m.CookieName()))

	// InvalidateUserSessions reports what it ended.
	_, _, err = m.CreateSession(ctx, "alice", nil, store.Device{})
	require.NoError(t, err)
	n, err := m.InvalidateUserSessions(ctx, "alice")
	require.NoError(t, err, "a panicking hook failed InvalidateUserSessions")
	require.Equal(t, 2, n)
	list, err := m.GetUserSessions(ctx, "alice")
	require.NoError(t, err)
	require.Empty(t, list)

	require.Equal(t, []string{
		"SessionCreated",                             // CreateSession (old)
		"SessionRevoked", "SessionCreated", "SignIn", // SignIn
		"SessionCreated",              // JWT step
		"Refreshed", "SessionCreated", // refresh step
		"SignOut",
		"SessionCreated", "Invalidated",
	}, ph.list(), "not every hook ran, so the test proves less than it says")

	// One Error record per panic, naming the hook and the user.
	type record struct {
		Level, Msg, Hook, Panic, Stack string
		UserID                         string `json:"user_id"`
		SessionID                      string `json:"session_id"`
	}
	var panics []record
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec record
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		if strings.Contains(rec.Msg, "hook panicked") {
			panics = append(panics, rec)
		}
	}
	require.Len(t, panics, len(ph.list()))
	for i, rec := range panics {
		require.Equal(t, "ERROR", rec.Level)
		require.Equal(t, ph.list()[i], rec.Hook)
		require.Equal(t, fmt.Sprintf("audit sink down in %s for %s", rec.Hook, rec.UserID), rec.Panic)
		require.Contains(t, rec.Stack, "hooks_test.go", "the stack does not lead to the hook")
		if rec.Hook != "Invalidated" && rec.Hook != "Refreshed" {
			require.NotEmpty(t, rec.SessionID, "%s: no session ID logged", rec.Hook)
		}
	}
	all := logs.String()
	for _, sec := range secrets {
		require.NotEmpty(t, sec)
		require.NotContains(t, all, sec)
		require.NotContains(t, all, sec[len(sec)/3:2*len(sec)/3])
	}
}

// TestHookAbortHandlerIsContained: a hook that panics with
// http.ErrAbortHandler is contained like any other panic, on the caller's
// goroutine (CreateSession) and inside the merged JWT step, where
// re-raising it would end the process: the session is created and
// returned, and the panic is logged.
func TestHookAbortHandlerIsContained(t *testing.T) {
	clock := storetest.NewClock(start())
	logs := &syncBuffer{}
	p := newIdP(t, "HS256", clock)
	var created int
	m, err := manager.New(newMemory(t, clock.Now), manager.Config{
		Now:    clock.Now,
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Hooks: manager.Hooks{SessionCreated: func(context.Context, manager.Event) {
			created++
			panic(http.ErrAbortHandler)
		}},
		JWT:      p.verifier(t, jwtverify.Config{}),
		Upstream: p.client(t),
	})
	require.NoError(t, err)

	tok, _, err := m.CreateSession(ctx, "alice", nil, store.Device{})
	require.NoError(t, err)
	_, err = m.Lookup(ctx, tok)
	require.NoError(t, err, "the session is not in the store")

	res, err := m.Resolve(ctx, manager.Credentials{AccessToken: p.accessToken(t, "42")})
	require.NoError(t, err)
	_, err = m.Lookup(ctx, res.SessionToken)
	require.NoError(t, err, "the JWT step's session is not in the store")

	require.Equal(t, 2, created, "the hook did not run on both paths")
	require.Equal(t, 2, strings.Count(logs.String(), http.ErrAbortHandler.Error()), logs.String())
}
