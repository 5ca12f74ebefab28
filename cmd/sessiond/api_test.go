package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/memory"
)

func TestCreateLookupTouchSignOut(t *testing.T) {
	env := newTestEnv(t, envOptions{})
	ctx := context.Background()

	created, err := env.c.CreateSession(ctx, client.CreateRequest{
		UserID: "alice",
		User:   json.RawMessage(`{"name":"Alice"}`),
		Device: store.Device{UserAgent: "test-agent", IP: "203.0.113.7", Label: "laptop"},
	})
	require.NoError(t, err)
	require.Len(t, created.Token, store.TokenLen)
	id, err := store.IDFromToken(created.Token)
	require.NoError(t, err)
	require.Equal(t, id, created.Session.ID)
	require.Equal(t, "alice", created.Session.UserID)
	require.JSONEq(t, `{"name":"Alice"}`, string(created.Session.User))
	require.Equal(t, "laptop", created.Session.Device.Label)
	require.Len(t, created.Cookies, 1)
	ck := created.Cookies[0]
	require.Equal(t, env.mgr.CookieName(), ck.Name)
	require.Equal(t, created.Token, ck.Value)
	require.True(t, ck.HttpOnly)
	require.True(t, ck.Secure)
	require.Equal(t, "Lax", ck.SameSite)
	require.Contains(t, ck.Header, ck.Name+"="+created.Token)
	require.Equal(t, ck.Header, ck.HTTP().String(), "the structured cookie and the header agree")

	got, err := env.c.Lookup(ctx, created.Token)
	require.NoError(t, err)
	require.Equal(t, created.Session.ID, got.ID)
	require.Equal(t, created.Session.ExpiresAt, got.ExpiresAt)

	// A fresh session is not extended: UpdateAge has not passed.
	touched, err := env.c.Touch(ctx, created.Token)
	require.NoError(t, err)
	require.False(t, touched.Extended)
	require.Empty(t, touched.Cookies)
	require.Equal(t, created.Session.ID, touched.Session.ID)

	out, err := env.c.SignOut(ctx, created.Token)
	require.NoError(t, err)
	require.True(t, out.Revoked)
	names := map[string]bool{}
	for _, c := range out.Cookies {
		names[c.Name] = true
		require.Negative(t, c.MaxAge, "cookie %s must be deleted", c.Name)
	}
	require.True(t, names[env.mgr.CookieName()], "sign-out clears the session cookie: %v", names)

	_, err = env.c.Lookup(ctx, created.Token)
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeInvalidToken)

	// Signing out again is idempotent.
	out, err = env.c.SignOut(ctx, created.Token)
	require.NoError(t, err)
	require.False(t, out.Revoked)
	require.NotEmpty(t, out.Cookies)
}

// A session whose UpdateAge has passed is extended by touch and by resolve,
// and the cookie is re-sent.
func TestSlidingExpiry(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	env := newTestEnv(t, envOptions{mcfg: func(c *manager.Config) {
		c.Now = func() time.Time { return clock() }
		c.MaxAge = time.Hour
		c.UpdateAge = time.Minute
	}})
	ctx := context.Background()
	created, err := env.c.CreateSession(ctx, client.CreateRequest{UserID: "bob"})
	require.NoError(t, err)

	clock = func() time.Time { return now.Add(2 * time.Minute) }
	touched, err := env.c.Touch(ctx, created.Token)
	require.NoError(t, err)
	require.True(t, touched.Extended)
	require.True(t, touched.Session.ExpiresAt.After(created.Session.ExpiresAt))
	require.Len(t, touched.Cookies, 1)
	require.Equal(t, created.Token, touched.Cookies[0].Value)

	clock = func() time.Time { return now.Add(4 * time.Minute) }
	res, err := env.c.Resolve(ctx, client.ResolveRequest{SessionToken: created.Token})
	require.NoError(t, err)
	require.Equal(t, "session", res.Source)
	require.True(t, res.Extended)
	require.NotEmpty(t, res.Cookies)

	// Lookup never slides.
	clock = func() time.Time { return now.Add(6 * time.Minute) }
	before, err := env.c.Lookup(ctx, created.Token)
	require.NoError(t, err)
	after, err := env.c.Lookup(ctx, created.Token)
	require.NoError(t, err)
	require.Equal(t, before.ExpiresAt, after.ExpiresAt)
}

func TestResolveSessionToken(t *testing.T) {
	env := newTestEnv(t, envOptions{})
	ctx := context.Background()
	created, err := env.c.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	require.NoError(t, err)

	res, err := env.c.Resolve(ctx, client.ResolveRequest{SessionToken: created.Token})
	require.NoError(t, err)
	require.Equal(t, "session", res.Source)
	require.Equal(t, created.Session.ID, res.Session.ID)
	require.False(t, res.Extended)
	require.NotNil(t, res.Cookies)
	require.Empty(t, res.Cookies)
	require.Empty(t, res.SessionToken, "no new session, no token in the answer")

	// The token may come in a header instead of the body.
	status, hdr, body := env.do(t, "POST", "/v1/sessions/resolve", "", map[string]string{client.HeaderSessionToken: created.Token})
	require.Equal(t, http.StatusOK, status, "%s", body)
	require.Equal(t, "no-store", hdr.Get("Cache-Control"))
	var r client.Resolution
	require.NoError(t, json.Unmarshal(body, &r))
	require.Equal(t, created.Session.ID, r.Session.ID)

	status, _, body = env.do(t, "POST", "/v1/sessions/lookup", "", map[string]string{client.HeaderSessionToken: created.Token})
	require.Equal(t, http.StatusOK, status, "%s", body)

	_, err = env.c.Resolve(ctx, client.ResolveRequest{SessionToken: strings.Repeat("A", store.TokenLen)})
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeInvalidToken)
	_, err = env.c.Resolve(ctx, client.ResolveRequest{SessionToken: "short"})
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeInvalidToken)
}

func TestResolveJWTAndRefresh(t *testing.T) {
	env := newTestEnv(t, envOptions{withJWT: true})
	ctx := context.Background()

	// Step 2: a valid access token creates a session for its user.
	access := signJWT(t, "dave", time.Hour)
	res, err := env.c.Resolve(ctx, client.ResolveRequest{AccessToken: access, Device: store.Device{Label: "phone"}})
	require.NoError(t, err)
	require.Equal(t, "jwt", res.Source)
	require.Equal(t, "dave", res.Session.UserID)
	require.JSONEq(t, `{"id":"dave","name":"From Upstream"}`, string(res.Session.User))
	require.Len(t, res.SessionToken, store.TokenLen)
	require.NotEmpty(t, res.Cookies)
	got, err := env.c.Lookup(ctx, res.SessionToken)
	require.NoError(t, err)
	require.Equal(t, res.Session.ID, got.ID)

	// The access token may come in a header.
	status, _, body := env.do(t, "POST", "/v1/sessions/resolve", "", map[string]string{client.HeaderAccessToken: access})
	require.Equal(t, http.StatusOK, status, "%s", body)

	// Step 3: an expired access token and a refresh token.
	res, err = env.c.Resolve(ctx, client.ResolveRequest{AccessToken: signJWT(t, "carol", -time.Hour), RefreshToken: "good-refresh-token"})
	require.NoError(t, err)
	require.Equal(t, "refresh", res.Source)
	require.Equal(t, "carol", res.Session.UserID)
	require.NotEmpty(t, res.AccessToken)
	require.Equal(t, "rotated-refresh-token", res.RefreshToken)
	require.NotEmpty(t, res.SessionToken)

	// A refused refresh token and a forged JWT are invalid_token, and
	// create nothing.
	before, err := env.mgr.Store().Count(ctx, "dave")
	require.NoError(t, err)
	require.GreaterOrEqual(t, before, 1)
	_, err = env.c.Resolve(ctx, client.ResolveRequest{RefreshToken: "bad-refresh-token"})
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeInvalidToken)
	_, err = env.c.Resolve(ctx, client.ResolveRequest{AccessToken: access[:len(access)-4] + "AAAA"})
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeInvalidToken)
	after, err := env.mgr.Store().Count(ctx, "dave")
	require.NoError(t, err)
	require.Equal(t, before, after, "refused tokens made no session")

	// Upstream down: 503 upstream_unavailable, not a sign-out.
	env.up.setDown(true)
	_, err = env.c.Resolve(ctx, client.ResolveRequest{AccessToken: signJWT(t, "erin", time.Hour)})
	requireClientCode(t, err, http.StatusServiceUnavailable, client.CodeUpstreamUnavailable)
}

func TestUserEndpoints(t *testing.T) {
	env := newTestEnv(t, envOptions{})
	ctx := context.Background()
	// A user ID with a slash and non-ASCII survives path escaping.
	const uid = "org/42/usér"
	var tokens []string
	for i := range 3 {
		c, err := env.c.CreateSession(ctx, client.CreateRequest{UserID: uid, Device: store.Device{Label: fmt.Sprint("dev", i)}})
		require.NoError(t, err)
		tokens = append(tokens, c.Token)
	}
	other, err := env.c.CreateSession(ctx, client.CreateRequest{UserID: "someone-else"})
	require.NoError(t, err)

	list, err := env.c.ListSessions(ctx, uid)
	require.NoError(t, err)
	require.Len(t, list, 3)
	status, _, body := env.do(t, "GET", "/v1/users/org%2F42%2Fus%C3%A9r/sessions", "", nil)
	require.Equal(t, http.StatusOK, status, "%s", body)
	var sl client.SessionList
	require.NoError(t, json.Unmarshal(body, &sl))
	require.Len(t, sl.Sessions, 3)
	for _, tok := range tokens {
		require.NotContains(t, string(body), tok, "a session list never holds tokens")
	}

	n, err := env.c.UpdateUser(ctx, uid, json.RawMessage(`{"name":"New"}`))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	s, err := env.c.Lookup(ctx, tokens[0])
	require.NoError(t, err)
	require.JSONEq(t, `{"name":"New"}`, string(s.User))
	n, err = env.c.UpdateUser(ctx, "nobody", json.RawMessage(`{}`))
	require.NoError(t, err)
	require.Zero(t, n)

	require.NoError(t, env.c.RevokeSession(ctx, uid, list[0].ID))
	_, err = env.c.Lookup(ctx, tokens[0])
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeInvalidToken)
	// Revoking it again, or with another user's ID, is not_found.
	requireClientCode(t, env.c.RevokeSession(ctx, uid, list[0].ID), http.StatusNotFound, client.CodeNotFound)
	requireClientCode(t, env.c.RevokeSession(ctx, "someone-else", list[1].ID), http.StatusNotFound, client.CodeNotFound)
	requireClientCode(t, env.c.RevokeSession(ctx, uid, "not-an-id"), http.StatusNotFound, client.CodeNotFound)

	revoked, err := env.c.RevokeUserSessions(ctx, uid)
	require.NoError(t, err)
	require.Equal(t, 2, revoked)
	list, err = env.c.ListSessions(ctx, uid)
	require.NoError(t, err)
	require.NotNil(t, list)
	require.Empty(t, list)
	_, err = env.c.Lookup(ctx, other.Token)
	require.NoError(t, err, "other users keep their sessions")
}

// TestErrorCodes answers each stable code at least once, with its status
// and the JSON error shape, and checks that bad input changed nothing.
func TestErrorCodes(t *testing.T) {
	env := newTestEnv(t, envOptions{})
	ctx := context.Background()
	valid, err := env.c.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	require.NoError(t, err)
	unknownToken, err := store.NewToken("alice")
	require.NoError(t, err)

	cases := []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		code                     string
	}{
		{"create without userId", "POST", "/v1/sessions", `{}`, nil, 400, client.CodeInvalidRequest},
		{"create with bad JSON", "POST", "/v1/sessions", `{"userId":`, nil, 400, client.CodeInvalidRequest},
		{"create with unknown field", "POST", "/v1/sessions", `{"user_id":"x"}`, nil, 400, client.CodeInvalidRequest},
		{"create with trailing data", "POST", "/v1/sessions", `{"userId":"x"} {}`, nil, 400, client.CodeInvalidRequest},
		{"create with empty body", "POST", "/v1/sessions", ``, nil, 400, client.CodeInvalidRequest},
		{"create with control char user ID", "POST", "/v1/sessions", `{"userId":"a\u0001b"}`, nil, 400, client.CodeInvalidRequest},
		{"create with bad device IP", "POST", "/v1/sessions", `{"userId":"x","device":{"ip":"nope"}}`, nil, 400, client.CodeInvalidRequest},
		{"create with huge user", "POST", "/v1/sessions", `{"userId":"x","user":"` + strings.Repeat("a", store.MaxUserSize) + `"}`, nil, 413, client.CodeTooLarge},
		{"create with long user ID", "POST", "/v1/sessions", `{"userId":"` + strings.Repeat("u", store.MaxUserIDLen+1) + `"}`, nil, 413, client.CodeTooLarge},
		{"resolve without credentials", "POST", "/v1/sessions/resolve", `{}`, nil, 400, client.CodeInvalidRequest},
		{"resolve unknown token", "POST", "/v1/sessions/resolve", `{"sessionToken":"` + unknownToken + `"}`, nil, 401, client.CodeInvalidToken},
		{"resolve JWT with the JWT step off", "POST", "/v1/sessions/resolve", `{"accessToken":"a.b.c"}`, nil, 401, client.CodeInvalidToken},
		{"lookup without token", "POST", "/v1/sessions/lookup", `{}`, nil, 400, client.CodeInvalidRequest},
		{"lookup malformed token", "POST", "/v1/sessions/lookup", `{"token":"abc"}`, nil, 401, client.CodeInvalidToken},
		{"lookup unknown token", "POST", "/v1/sessions/lookup", `{"token":"` + unknownToken + `"}`, nil, 401, client.CodeInvalidToken},
		{"touch unknown token", "POST", "/v1/sessions/touch", `{"token":"` + unknownToken + `"}`, nil, 401, client.CodeInvalidToken},
		{"touch without token", "POST", "/v1/sessions/touch", ``, nil, 400, client.CodeInvalidRequest},
		{"signout malformed token", "POST", "/v1/sessions/signout", `{"token":"abc"}`, nil, 401, client.CodeInvalidToken},
		{"update without user", "PUT", "/v1/users/alice/profile", `{}`, nil, 400, client.CodeInvalidRequest},
		{"update with huge user", "PUT", "/v1/users/alice/profile", `{"user":"` + strings.Repeat("a", store.MaxUserSize) + `"}`, nil, 413, client.CodeTooLarge},
		{"list with control char user", "GET", "/v1/users/a%01b/sessions", ``, nil, 400, client.CodeInvalidRequest},
		{"revoke unknown session", "DELETE", "/v1/users/alice/sessions/" + strings.Repeat("a", store.IDLen), ``, nil, 404, client.CodeNotFound},
		{"unknown route", "GET", "/v1/nope", ``, nil, 404, client.CodeNotFound},
		{"token in URL is no route", "GET", "/v1/sessions/" + valid.Token, ``, nil, 404, client.CodeNotFound},
		{"wrong method", "GET", "/v1/sessions", ``, nil, 404, client.CodeNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := env.do(t, tc.method, tc.path, tc.body, tc.header)
			requireCode(t, status, body, tc.status, tc.code)
			require.Equal(t, "application/json; charset=utf-8", hdr.Get("Content-Type"))
			require.NotContains(t, string(body), valid.Token)
		})
	}

	// None of it changed anything: alice still has exactly her session.
	list, err := env.c.ListSessions(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, valid.Session.ID, list[0].ID)
	// Every request naming user "x" was refused: "x" has no session at
	// all (one slipping through must fail here, not hide under a bound).
	ss, err := env.mgr.GetUserSessions(ctx, "x")
	require.NoError(t, err)
	require.Empty(t, ss, "a refused sign-in of user x created a session")
	s, err := env.c.Lookup(ctx, valid.Token)
	require.NoError(t, err)
	require.Empty(t, s.User, "the refused profile update left the profile alone")
}

func TestTooManySessions(t *testing.T) {
	env := newTestEnv(t, envOptions{mcfg: func(c *manager.Config) {
		c.MaxSessionsPerUser = 1
		c.OnLimit = store.Refuse
	}})
	ctx := context.Background()
	first, err := env.c.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	require.NoError(t, err)
	_, err = env.c.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	requireClientCode(t, err, http.StatusTooManyRequests, client.CodeTooManySessions)
	list, err := env.c.ListSessions(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, first.Session.ID, list[0].ID)
}

func TestBodyLimit(t *testing.T) {
	env := newTestEnv(t, envOptions{})
	big := strings.Repeat("x", 10<<20)

	// With a Content-Length: refused before reading.
	status, _, body := env.do(t, "POST", "/v1/sessions", big, nil)
	requireCode(t, status, body, http.StatusRequestEntityTooLarge, client.CodeTooLarge)

	// Chunked, without a Content-Length: cut off by the reader.
	req, err := http.NewRequest("POST", env.srv.URL+"/v1/sessions", io.MultiReader(strings.NewReader(`{"userId":"a","user":"`), strings.NewReader(big)))
	require.NoError(t, err)
	req.ContentLength = -1
	resp, err := env.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	requireCode(t, resp.StatusCode, data, http.StatusRequestEntityTooLarge, client.CodeTooLarge)

	list, err := env.c.ListSessions(context.Background(), "a")
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestCallerAuth(t *testing.T) {
	const key1, key2 = "old-key-0123456789abcdef", "new-key-0123456789abcdef"
	env := newTestEnv(t, envOptions{keys: []string{key1, key2}})
	ctx := context.Background()

	// Both keys work during a rotation, in either header.
	for _, key := range []string{key1, key2} {
		c, err := client.New(env.srv.URL, client.WithAPIKey(key))
		require.NoError(t, err)
		_, err = c.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
		require.NoError(t, err)
	}
	status, _, body := env.do(t, "GET", "/v1/users/alice/sessions", "", map[string]string{client.HeaderAPIKey: key2})
	require.Equal(t, http.StatusOK, status, "%s", body)

	noKey, err := client.New(env.srv.URL)
	require.NoError(t, err)
	_, err = noKey.ListSessions(ctx, "alice")
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeUnauthorized)
	_, err = noKey.CreateSession(ctx, client.CreateRequest{UserID: "mallory"})
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeUnauthorized)

	for name, h := range map[string]map[string]string{
		"wrong bearer":  {"Authorization": "Bearer " + key1 + "x"},
		"prefix of key": {"Authorization": "Bearer " + key1[:10]},
		"wrong header":  {client.HeaderAPIKey: "nope"},
		"basic scheme":  {"Authorization": "Basic " + key1},
		"empty bearer":  {"Authorization": "Bearer "},
	} {
		status, hdr, body := env.do(t, "GET", "/v1/users/alice/sessions", "", h)
		requireCode(t, status, body, http.StatusUnauthorized, client.CodeUnauthorized)
		require.Contains(t, hdr.Get("WWW-Authenticate"), "Bearer", name)
	}
	// Nothing was created by the refused calls.
	n, err := env.mgr.Store().Count(ctx, "mallory")
	require.NoError(t, err)
	require.Zero(t, n)

	// Health endpoints and metrics need no key.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		status, _, body := env.do(t, "GET", p, "", nil)
		require.Equal(t, http.StatusOK, status, "%s: %s", p, body)
	}
}

func TestRateLimitFailedTokenChecks(t *testing.T) {
	const key, key2 = "rate-key-0123456789abcdef", "other-key-0123456789abcdef"
	env := newTestEnv(t, envOptions{keys: []string{key, key2}, failRate: 0.01, failBurst: 3})
	ctx := context.Background()
	good, err := env.c.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	require.NoError(t, err)
	unknown, err := store.NewToken("alice")
	require.NoError(t, err)

	// Valid tokens cost nothing.
	for range 5 {
		_, err := env.c.Lookup(ctx, good.Token)
		require.NoError(t, err)
	}
	for range 3 {
		_, err := env.c.Lookup(ctx, unknown)
		requireClientCode(t, err, http.StatusUnauthorized, client.CodeInvalidToken)
	}
	// The caller is now blocked, for valid tokens too, on every
	// token-bearing endpoint.
	_, err = env.c.Lookup(ctx, good.Token)
	requireClientCode(t, err, http.StatusTooManyRequests, client.CodeRateLimited)
	_, err = env.c.Resolve(ctx, client.ResolveRequest{SessionToken: good.Token})
	requireClientCode(t, err, http.StatusTooManyRequests, client.CodeRateLimited)
	status, hdr, body := env.do(t, "POST", "/v1/sessions/touch", `{"token":"`+good.Token+`"}`, map[string]string{"Authorization": "Bearer " + key})
	requireCode(t, status, body, http.StatusTooManyRequests, client.CodeRateLimited)
	require.NotEmpty(t, hdr.Get("Retry-After"))

	// Calls without a token are not limited.
	_, err = env.c.ListSessions(ctx, "alice")
	require.NoError(t, err)

	// Wrong API keys from the same IP stay 401 and do not lock out a
	// caller with a right key (app servers often share an egress IP).
	for range 5 {
		status, _, body := env.do(t, "GET", "/v1/users/alice/sessions", "", map[string]string{"Authorization": "Bearer wrong-key-0123456789"})
		requireCode(t, status, body, http.StatusUnauthorized, client.CodeUnauthorized)
	}

	// The limit is per caller: another API key is not blocked.
	c2, err := client.New(env.srv.URL, client.WithAPIKey(key2))
	require.NoError(t, err)
	_, err = c2.Lookup(ctx, good.Token)
	require.NoError(t, err)
}

// TestMetricMethodBounded: arbitrary request methods do not create series.
func TestMetricMethodBounded(t *testing.T) {
	env := newTestEnv(t, envOptions{})
	for i := range 5 {
		env.do(t, fmt.Sprint("X", i), "/nope", "", nil)
	}
	_, _, body := env.do(t, "GET", "/metrics", "", nil)
	require.Contains(t, string(body), `sessiond_http_requests_total{code="404",method="other",route="unmatched"} 5`)
	require.NotContains(t, string(body), `method="X1"`)
}

func TestFailureLimiterRefills(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newFailureLimiter(1, 2, func() time.Time { return now })
	blocked, _ := l.blocked("a")
	require.False(t, blocked)
	l.fail("a")
	l.fail("a")
	blocked, wait := l.blocked("a")
	require.True(t, blocked)
	require.Equal(t, time.Second, wait)
	blocked, _ = l.blocked("b")
	require.False(t, blocked, "callers are limited separately")
	now = now.Add(time.Second)
	blocked, _ = l.blocked("a")
	require.False(t, blocked, "one failure refilled after a second")

	var off *failureLimiter = newFailureLimiter(0, 0, time.Now)
	require.Nil(t, off)
	off.fail("a")
	blocked, _ = off.blocked("a")
	require.False(t, blocked, "a nil limiter limits nothing")
}

func TestFailureLimiterBoundedMemory(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newFailureLimiter(1, 5, func() time.Time { return now })
	for i := range maxTrackedCallers + 100 {
		l.fail(fmt.Sprint("ip:", i))
	}
	require.LessOrEqual(t, len(l.callers), maxTrackedCallers)
}

// unavailableStore fails every call the way a backend that lost its server
// does.
type unavailableStore struct{ store.Store }

var errDown = fmt.Errorf("test backend: dial tcp: connection refused: %w", store.ErrUnavailable)

func (unavailableStore) Create(context.Context, *store.Session, store.CreateOptions) ([]string, error) {
	return nil, errDown
}
func (unavailableStore) Get(context.Context, string) (*store.Session, error) { return nil, errDown }
func (unavailableStore) Touch(context.Context, string, time.Time, time.Time) (*store.Session, error) {
	return nil, errDown
}
func (unavailableStore) UpdateUser(context.Context, string, json.RawMessage) (int, error) {
	return 0, errDown
}
func (unavailableStore) Delete(context.Context, string) error                   { return errDown }
func (unavailableStore) List(context.Context, string) ([]*store.Session, error) { return nil, errDown }
func (unavailableStore) DeleteUser(context.Context, string) (int, error)        { return 0, errDown }
func (unavailableStore) Count(context.Context, string) (int, error)             { return 0, errDown }
func (unavailableStore) Ping(context.Context) error                             { return errDown }

func TestStoreUnavailable(t *testing.T) {
	st := unavailableStore{}
	env := newTestEnv(t, envOptions{store: st, ping: storePinger(st)})
	ctx := context.Background()
	tok, err := store.NewToken("alice")
	require.NoError(t, err)
	sid, err := store.IDFromToken(tok)
	require.NoError(t, err)

	calls := map[string]error{}
	_, calls["create"] = env.c.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	_, calls["resolve"] = env.c.Resolve(ctx, client.ResolveRequest{SessionToken: tok})
	_, calls["lookup"] = env.c.Lookup(ctx, tok)
	_, calls["touch"] = env.c.Touch(ctx, tok)
	_, calls["signout"] = env.c.SignOut(ctx, tok)
	_, calls["update"] = env.c.UpdateUser(ctx, "alice", json.RawMessage(`{}`))
	_, calls["list"] = env.c.ListSessions(ctx, "alice")
	calls["revoke"] = env.c.RevokeSession(ctx, "alice", sid)
	_, calls["revokeAll"] = env.c.RevokeUserSessions(ctx, "alice")
	calls["readyz"] = env.c.Readyz(ctx)
	for name, err := range calls {
		t.Run(name, func(t *testing.T) {
			requireClientCode(t, err, http.StatusServiceUnavailable, client.CodeStoreUnavailable)
		})
	}
	require.NoError(t, env.c.Healthz(ctx), "liveness never depends on the store")

	_, _, body := env.do(t, "GET", "/metrics", "", nil)
	require.Contains(t, string(body), `sessiond_store_errors_total{operation="lookupSession"} 1`)
	require.Contains(t, string(body), `sessiond_resolve_total{outcome="store_unavailable",source="none"} 1`)
}

// panicStore panics on Get, standing in for a bug.
type panicStore struct{ store.Store }

func (panicStore) Get(context.Context, string) (*store.Session, error) { panic("boom") }

func TestInternalError(t *testing.T) {
	env := newTestEnv(t, envOptions{store: panicStore{}})
	tok, err := store.NewToken("alice")
	require.NoError(t, err)
	_, err = env.c.Lookup(context.Background(), tok)
	requireClientCode(t, err, http.StatusInternalServerError, client.CodeInternal)
	require.Contains(t, env.logs.String(), "panic in handler")
	// The server survived.
	require.NoError(t, env.c.Healthz(context.Background()))
}

func TestReadyzShuttingDown(t *testing.T) {
	env := newTestEnv(t, envOptions{})
	require.NoError(t, env.c.Readyz(context.Background()))
	env.api.draining.Store(true)
	err := env.c.Readyz(context.Background())
	requireClientCode(t, err, http.StatusServiceUnavailable, client.CodeShuttingDown)
	require.NoError(t, env.c.Healthz(context.Background()), "alive while draining")
}

// A store whose ping hangs makes /readyz fail within its bound (2 s, or
// --request-timeout if shorter) instead of hanging the probe.
func TestReadyzHungStore(t *testing.T) {
	env := newTestEnv(t, envOptions{ping: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	env.api.requestTimeout = 100 * time.Millisecond // set before any request: no race
	start := time.Now()
	err := env.c.Readyz(context.Background())
	took := time.Since(start)
	requireClientCode(t, err, http.StatusServiceUnavailable, client.CodeStoreUnavailable)
	require.GreaterOrEqual(t, took, 100*time.Millisecond, "answered before the ping's deadline")
	require.Less(t, took, readyTimeout, "the probe waited past --request-timeout")
}

func TestMetrics(t *testing.T) {
	env := newTestEnv(t, envOptions{})
	ctx := context.Background()
	created, err := env.c.CreateSession(ctx, client.CreateRequest{UserID: "metrics-user-123"})
	require.NoError(t, err)
	_, err = env.c.Resolve(ctx, client.ResolveRequest{SessionToken: created.Token})
	require.NoError(t, err)
	bad, err := store.NewToken("x")
	require.NoError(t, err)
	_, err = env.c.Resolve(ctx, client.ResolveRequest{SessionToken: bad})
	require.Error(t, err)
	_, err = env.c.ListSessions(ctx, "metrics-user-123")
	require.NoError(t, err)

	status, _, body := env.do(t, "GET", "/metrics", "", nil)
	require.Equal(t, http.StatusOK, status)
	m := string(body)
	for _, want := range []string{
		`sessiond_http_requests_total{code="201",method="POST",route="/v1/sessions"} 1`,
		`sessiond_http_requests_total{code="200",method="GET",route="/v1/users/{userId}/sessions"} 1`,
		`sessiond_resolve_total{outcome="ok",source="session"} 1`,
		`sessiond_resolve_total{outcome="no_session",source="none"} 1`,
		`sessiond_http_request_duration_seconds_bucket{method="POST",route="/v1/sessions/resolve",le="+Inf"} 2`,
		`go_goroutines`,
		`sessiond_session_events_total{detail="signin",event="created"} 1`,
	} {
		require.Contains(t, m, want)
	}
	for _, secret := range []string{created.Token, created.Session.ID, "metrics-user-123", bad} {
		require.NotContains(t, m, secret, "metrics carry no IDs or tokens")
	}
}

func TestRequestID(t *testing.T) {
	env := newTestEnv(t, envOptions{})
	_, hdr, _ := env.do(t, "GET", "/healthz", "", map[string]string{"X-Request-Id": "abc-123"})
	require.Equal(t, "abc-123", hdr.Get("X-Request-Id"))
	_, hdr, _ = env.do(t, "GET", "/healthz", "", map[string]string{"X-Request-Id": "bad\"id"})
	require.Len(t, hdr.Get("X-Request-Id"), 16, "an unsafe request ID is replaced")
}

// TestNoTokensInLogs runs a full flow, errors included, and checks that no
// token, refresh token, JWT or API key reached the log.
func TestNoTokensInLogs(t *testing.T) {
	const key = "log-key-0123456789abcdef"
	env := newTestEnv(t, envOptions{keys: []string{key}, withJWT: true})
	ctx := context.Background()
	var secrets []string

	created, err := env.c.CreateSession(ctx, client.CreateRequest{UserID: "alice", Device: store.Device{Label: "x"}})
	require.NoError(t, err)
	secrets = append(secrets, created.Token)
	_, err = env.c.Resolve(ctx, client.ResolveRequest{SessionToken: created.Token})
	require.NoError(t, err)
	_, err = env.c.Touch(ctx, created.Token)
	require.NoError(t, err)
	_, err = env.c.Lookup(ctx, created.Token)
	require.NoError(t, err)

	access := signJWT(t, "dave", time.Hour)
	res, err := env.c.Resolve(ctx, client.ResolveRequest{AccessToken: access})
	require.NoError(t, err)
	secrets = append(secrets, access, res.SessionToken)
	expired := signJWT(t, "carol", -time.Hour)
	res, err = env.c.Resolve(ctx, client.ResolveRequest{AccessToken: expired, RefreshToken: "good-refresh-token"})
	require.NoError(t, err)
	secrets = append(secrets, expired, "good-refresh-token", res.AccessToken, res.RefreshToken, res.SessionToken)

	unknown, err := store.NewToken("alice")
	require.NoError(t, err)
	secrets = append(secrets, unknown)
	_, err = env.c.Lookup(ctx, unknown)
	require.Error(t, err)
	_, err = env.c.Resolve(ctx, client.ResolveRequest{RefreshToken: "bad-refresh-token-secret"})
	require.Error(t, err)
	secrets = append(secrets, "bad-refresh-token-secret")
	env.up.setDown(true)
	downJWT := signJWT(t, "erin", time.Hour)
	_, err = env.c.Resolve(ctx, client.ResolveRequest{AccessToken: downJWT})
	require.Error(t, err)
	secrets = append(secrets, downJWT)
	env.do(t, "GET", "/v1/users/alice/sessions", "", map[string]string{"Authorization": "Bearer wrong-api-key-secret"})
	secrets = append(secrets, "wrong-api-key-secret", key)
	_, err = env.c.SignOut(ctx, created.Token)
	require.NoError(t, err)

	logs := env.logs.String()
	require.Contains(t, logs, `"route":"/v1/sessions/resolve"`, "the flow was logged")
	require.Contains(t, logs, `"error_code":"upstream_unavailable"`)
	for _, s := range secrets {
		require.NotEmpty(t, s)
		require.NotContains(t, logs, s, "a token reached the log")
		// A JWT's signature alone would be a leak as well.
		if parts := strings.Split(s, "."); len(parts) == 3 {
			require.NotContains(t, logs, parts[2])
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("x: %w", store.ErrInvalid), 400, client.CodeInvalidRequest},
		{fmt.Errorf("x: %w", store.ErrTooLarge), 413, client.CodeTooLarge},
		{&http.MaxBytesError{Limit: 5}, 413, client.CodeTooLarge},
		{fmt.Errorf("x: %w", store.ErrTooManySessions), 429, client.CodeTooManySessions},
		{fmt.Errorf("x: %w", manager.ErrNoSession), 401, client.CodeInvalidToken},
		{fmt.Errorf("x: %w: %w", manager.ErrUnavailable, store.ErrUnavailable), 503, client.CodeStoreUnavailable},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), 503, client.CodeStoreUnavailable},
		{errors.New("boom"), 500, client.CodeInternal},
	} {
		got := classify(tc.err)
		require.Equal(t, tc.status, got.status, "classify(%v)", tc.err)
		require.Equal(t, tc.code, got.code, "classify(%v)", tc.err)
	}
}

// blockingStore's Get waits for its context, like a store call in flight
// when the caller hangs up.
type blockingStore struct {
	store.Store
	entered chan struct{}
}

func (s blockingStore) Get(ctx context.Context, _ string) (*store.Session, error) {
	close(s.entered)
	<-ctx.Done()
	return nil, fmt.Errorf("test store: get: %w", ctx.Err())
}

// TestCallerHangsUp: a caller that goes away mid-request is not counted as
// a store failure.
func TestCallerHangsUp(t *testing.T) {
	st := blockingStore{entered: make(chan struct{})}
	env := newTestEnv(t, envOptions{store: st})
	tok, err := store.NewToken("alice")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := env.c.Lookup(ctx, tok)
		done <- err
	}()
	<-st.entered
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	waitFor(t, "the request to be logged", func() bool {
		return strings.Contains(env.logs.String(), `"error_code":"canceled"`)
	})
	_, _, body := env.do(t, "GET", "/metrics", "", nil)
	require.NotContains(t, string(body), `sessiond_store_errors_total{operation="lookupSession"}`)
}

// A malformed session token or session ID is refused before any store
// call, on every endpoint that takes one, and each malformed token counts
// against the caller's failed-check budget like an unknown one.
func TestMalformedTokenReachesNoStore(t *testing.T) {
	ms := memory.New(memory.Options{})
	t.Cleanup(func() { ms.Close() })
	st := &fuzzStore{Store: ms}
	env := newTestEnv(t, envOptions{store: st, failRate: 0.01, failBurst: 3})
	ctx := context.Background()
	good, err := env.c.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	require.NoError(t, err)
	malformed := good.Token[:len(good.Token)-1] + "!"

	before := st.calls.Load()
	_, err = env.c.Lookup(ctx, malformed)
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeInvalidToken)
	_, err = env.c.Touch(ctx, malformed)
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeInvalidToken)
	_, err = env.c.SignOut(ctx, malformed)
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeInvalidToken)
	requireClientCode(t, env.c.RevokeSession(ctx, "alice", "not-an-id"), http.StatusNotFound, client.CodeNotFound)
	require.Equal(t, before, st.calls.Load(), "a malformed token or ID reached the store")

	// Three failed checks used the burst: the caller is now refused, even
	// with its valid token.
	_, err = env.c.Lookup(ctx, good.Token)
	requireClientCode(t, err, http.StatusTooManyRequests, client.CodeRateLimited)
}
