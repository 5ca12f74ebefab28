package manager_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/store"
)

// app is a small web app on a Manager, served over real HTTP (TLS unless
// the manager is in development mode) to a client with a cookie jar.
type app struct {
	e      *env
	srv    *httptest.Server
	url    *url.URL
	jar    *cookiejar.Jar
	client *http.Client
}

func newApp(t *testing.T, e *env) *app {
	t.Helper()
	m := e.m
	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		user := r.FormValue("user")
		s, err := m.SignIn(r.Context(), w, r, user, json.RawMessage(`{"name":"`+user+`"}`), store.Device{Label: "test"})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, s.ID)
	})
	mux.Handle("GET /me", m.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Several reads in one request: the per-request cache serves them.
		var s *store.Session
		for range 5 {
			var err error
			if s, err = m.GetServerSession(r); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		fromCtx, ok := manager.FromContext(r.Context())
		if !ok || fromCtx.ID != s.ID {
			http.Error(w, "FromContext disagrees with GetServerSession", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"user": s.UserID, "sid": s.ID})
	})))
	mux.HandleFunc("GET /public", func(w http.ResponseWriter, r *http.Request) {
		if s, ok := manager.FromContext(r.Context()); ok {
			_, _ = io.WriteString(w, s.UserID)
			return
		}
		_, _ = io.WriteString(w, "anonymous")
	})
	mux.HandleFunc("POST /logout", func(w http.ResponseWriter, r *http.Request) {
		if err := m.SignOut(w, r); err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	a := &app{e: e}
	if m.Config().Development {
		a.srv = httptest.NewServer(m.Middleware(mux))
	} else {
		a.srv = httptest.NewTLSServer(m.Middleware(mux))
	}
	t.Cleanup(a.srv.Close)
	a.url, _ = url.Parse(a.srv.URL)
	a.jar, _ = cookiejar.New(nil)
	a.client = a.srv.Client()
	a.client.Jar = a.jar
	return a
}

type reply struct {
	status  int
	body    string
	cookies []*http.Cookie // parsed Set-Cookie headers
	header  http.Header
}

func (a *app) do(t *testing.T, method, path string, form url.Values, header http.Header) reply {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, a.srv.URL+path, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := a.client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	r := reply{status: resp.StatusCode, body: string(b), header: resp.Header}
	for _, line := range resp.Header.Values("Set-Cookie") {
		c, err := http.ParseSetCookie(line)
		require.NoError(t, err, "Set-Cookie %q", line)
		r.cookies = append(r.cookies, c)
	}
	return r
}

func (a *app) login(t *testing.T, user string) reply {
	t.Helper()
	r := a.do(t, "POST", "/login", url.Values{"user": {user}}, nil)
	require.Equal(t, http.StatusOK, r.status, r.body)
	return r
}

func (a *app) me(t *testing.T) (reply, map[string]string) {
	t.Helper()
	r := a.do(t, "GET", "/me", nil, nil)
	var v map[string]string
	if r.status == http.StatusOK {
		require.NoError(t, json.Unmarshal([]byte(r.body), &v))
	}
	return r, v
}

// jarToken returns the session token the client holds, or "".
func (a *app) jarCookie(name string) string {
	for _, c := range a.jar.Cookies(a.url) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func (a *app) plant(cookies ...*http.Cookie) { a.jar.SetCookies(a.url, cookies) }

func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestHTTPCookieFlow(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{cfg: manager.Config{MaxAge: 24 * time.Hour, UpdateAge: time.Hour}})
		a := newApp(t, e)

		r, _ := a.me(t)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Zero(t, e.store.calls(), "a request without credentials reached the store")

		// Sign-in sets the cookie with production attributes.
		r = a.login(t, "alice")
		require.Len(t, r.cookies, 1)
		c := r.cookies[0]
		require.Equal(t, "__Host-session-token", c.Name)
		require.True(t, c.HttpOnly)
		require.True(t, c.Secure)
		require.Equal(t, http.SameSiteLaxMode, c.SameSite)
		require.Equal(t, "/", c.Path)
		require.Empty(t, c.Domain)
		require.Equal(t, 86400, c.MaxAge)
		require.Equal(t, "no-store", r.header.Get("Cache-Control"))
		token := a.jarCookie("__Host-session-token")
		require.Equal(t, c.Value, token)

		// The next request is recognised, with one store read for five
		// GetServerSession calls.
		gets := e.store.gets.Load()
		r, v := a.me(t)
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Equal(t, "alice", v["user"])
		require.Empty(t, r.cookies)
		require.Equal(t, gets+1, e.store.gets.Load())

		// Sliding expiry: no cookie before UpdateAge, one after, then none.
		e.clock.Advance(59 * time.Minute)
		r, _ = a.me(t)
		require.Equal(t, http.StatusOK, r.status)
		require.Empty(t, r.cookies, "cookie re-sent before UpdateAge")
		require.Empty(t, r.header.Get("Cache-Control"))
		e.clock.Advance(2 * time.Minute)
		r, _ = a.me(t)
		require.Equal(t, http.StatusOK, r.status)
		require.Len(t, r.cookies, 1, "cookie not re-sent after UpdateAge")
		require.Equal(t, token, r.cookies[0].Value)
		require.Equal(t, 86400, r.cookies[0].MaxAge)
		require.True(t, r.cookies[0].Secure)
		require.Equal(t, "no-store", r.header.Get("Cache-Control"))
		r, _ = a.me(t)
		require.Empty(t, r.cookies)

		// Middleware on a public page: the session is in the context.
		r = a.do(t, "GET", "/public", nil, nil)
		require.Equal(t, "alice", r.body)

		// Sign-out deletes the session and clears every cookie.
		r = a.do(t, "POST", "/logout", url.Values{}, nil)
		require.Equal(t, http.StatusNoContent, r.status)
		require.Len(t, r.cookies, 3)
		for _, name := range []string{e.m.CookieName(), e.m.AccessTokenCookieName(), e.m.RefreshTokenCookieName()} {
			c := cookieNamed(r.cookies, name)
			require.NotNil(t, c, "sign-out did not clear %s", name)
			require.Equal(t, -1, c.MaxAge) // Max-Age=0 on the wire
			require.True(t, c.Secure)
		}
		require.Empty(t, a.jarCookie(e.m.CookieName()))
		_, err := e.m.Lookup(ctx, token)
		require.ErrorIs(t, err, manager.ErrNoSession)
		r, _ = a.me(t)
		require.Equal(t, http.StatusUnauthorized, r.status)
		require.Equal(t, []string{"created", "signin", "signout"}, e.events.list())
	})
}

func TestHTTPDevelopmentMode(t *testing.T) {
	e := newEnv(t, newMemory, envOptions{cfg: manager.Config{Development: true}})
	a := newApp(t, e)
	require.True(t, strings.HasPrefix(a.srv.URL, "http://"))
	r := a.login(t, "dev")
	require.Len(t, r.cookies, 1)
	require.Equal(t, "session-token", r.cookies[0].Name)
	require.False(t, r.cookies[0].Secure)
	require.True(t, r.cookies[0].HttpOnly)
	require.Equal(t, 30*24*3600, r.cookies[0].MaxAge)
	_, v := a.me(t)
	require.Equal(t, "dev", v["user"])
}

func TestHTTPSessionFixation(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{})
		a := newApp(t, e)
		// An attacker plants their own session token in the victim's
		// browser before the victim signs in.
		planted, _, err := e.m.CreateSession(ctx, "mallory", nil, store.Device{})
		require.NoError(t, err)
		a.plant(&http.Cookie{Name: e.m.CookieName(), Value: planted, Path: "/"})

		r := a.login(t, "alice")
		require.Len(t, r.cookies, 1)
		require.NotEqual(t, planted, r.cookies[0].Value)
		require.Equal(t, r.cookies[0].Value, a.jarCookie(e.m.CookieName()))
		_, err = e.m.Lookup(ctx, planted)
		require.ErrorIs(t, err, manager.ErrNoSession, "the planted session survived sign-in")
		require.Zero(t, e.count(t, "mallory"))
		_, v := a.me(t)
		require.Equal(t, "alice", v["user"])
		require.Contains(t, e.events.list(), "revoked:replaced")

		// Bad sign-in input changes nothing, not even the old session.
		before := a.jarCookie(e.m.CookieName())
		r = a.do(t, "POST", "/login", url.Values{"user": {""}}, nil)
		require.Equal(t, http.StatusBadRequest, r.status)
		require.Empty(t, r.cookies)
		_, err = e.m.Lookup(ctx, before)
		require.NoError(t, err)
	})
}

func TestHTTPStaleCookieCleared(t *testing.T) {
	e := newEnv(t, newMemory, envOptions{})
	a := newApp(t, e)
	a.plant(&http.Cookie{Name: e.m.CookieName(), Value: must(store.NewToken("ghost")), Path: "/"})
	r := a.do(t, "GET", "/public", nil, nil)
	require.Equal(t, "anonymous", r.body)
	require.Len(t, r.cookies, 1)
	require.Equal(t, -1, r.cookies[0].MaxAge)
	require.Empty(t, a.jarCookie(e.m.CookieName()))
	require.Zero(t, e.store.writes())

	// Signing in with a stale cookie sends one Set-Cookie: the new one,
	// not a clearing followed by it.
	a.plant(&http.Cookie{Name: e.m.CookieName(), Value: must(store.NewToken("ghost")), Path: "/"})
	r = a.login(t, "alice")
	require.Len(t, r.cookies, 1)
	require.Positive(t, r.cookies[0].MaxAge)
	_, v := a.me(t)
	require.Equal(t, "alice", v["user"])

	// Signing out of a session just extended sends each cookie once.
	e.clock.Advance(25 * time.Hour)
	r = a.do(t, "POST", "/logout", url.Values{}, nil)
	require.Equal(t, http.StatusNoContent, r.status)
	require.Len(t, r.cookies, 3)
	for _, c := range r.cookies {
		require.Equal(t, -1, c.MaxAge, c.Name)
	}
}

func TestHTTPRequireSessionJSON(t *testing.T) {
	e := newEnv(t, newMemory, envOptions{})
	a := newApp(t, e)
	r := a.do(t, "GET", "/me", nil, http.Header{"Accept": {"application/json"}})
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.JSONEq(t, `{"error":"unauthorized"}`, r.body)
	r = a.do(t, "GET", "/me", nil, nil)
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, "Unauthorized\n", r.body)
}

func TestHTTPStoreDown(t *testing.T) {
	t.Run("store error", func(t *testing.T) {
		e := newEnv(t, newMemory, envOptions{})
		a := newApp(t, e)
		a.login(t, "alice")
		token := a.jarCookie(e.m.CookieName())

		e.store.down.Store(true)
		for _, path := range []string{"/me", "/public"} {
			r := a.do(t, "GET", path, nil, nil)
			require.Equal(t, http.StatusServiceUnavailable, r.status, path)
			require.Empty(t, r.header.Values("Set-Cookie"), "cookies touched while the store is down")
		}
		r := a.do(t, "POST", "/logout", url.Values{}, nil)
		require.Equal(t, http.StatusServiceUnavailable, r.status)
		require.Empty(t, r.header.Values("Set-Cookie"))
		require.Equal(t, token, a.jarCookie(e.m.CookieName()))

		e.store.down.Store(false)
		_, v := a.me(t)
		require.Equal(t, "alice", v["user"], "the session did not survive the outage")
	})
	t.Run("redis at a closed port", func(t *testing.T) {
		e := newEnv(t, deadRedisStore, envOptions{})
		a := newApp(t, e)
		token := must(store.NewToken("alice"))
		a.plant(&http.Cookie{Name: e.m.CookieName(), Value: token, Path: "/"})
		r := a.do(t, "GET", "/me", nil, http.Header{"Accept": {"application/json"}})
		require.Equal(t, http.StatusServiceUnavailable, r.status)
		require.JSONEq(t, `{"error":"unavailable"}`, r.body)
		require.Empty(t, r.header.Values("Set-Cookie"))
		require.Equal(t, token, a.jarCookie(e.m.CookieName()))
	})
}

func TestHTTPBearerAndRefreshCookies(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{idpAlg: "RS256"})
		a := newApp(t, e)

		// A bearer token signs the client in and sets the session cookie.
		r := a.do(t, "GET", "/me", nil, http.Header{
			"Authorization": {"Bearer " + e.idp.accessToken(t, "42")},
			"User-Agent":    {"bearer-client/1.0"},
		})
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Len(t, r.cookies, 1)
		// The session the chain created records the request's device.
		list, err := e.m.GetUserSessions(ctx, "42")
		require.NoError(t, err)
		require.Len(t, list, 1)
		require.Equal(t, store.Device{UserAgent: "bearer-client/1.0", IP: "127.0.0.1"}, list[0].Device)
		require.Equal(t, e.m.CookieName(), r.cookies[0].Name)
		require.Equal(t, "no-store", r.header.Get("Cache-Control"))
		calls := e.idp.userInfoCalls.Load()
		r, v := a.me(t)
		require.Equal(t, "42", v["user"])
		require.Empty(t, r.cookies)
		require.Equal(t, calls, e.idp.userInfoCalls.Load(), "the session cookie did not spare the upstream")

		// Expired access cookie + refresh cookie: refreshed, all three
		// cookies replaced.
		b := newApp(t, e)
		oldRT := e.idp.refreshToken("43")
		oldAT := e.idp.expiredToken(t, "43")
		b.plant(
			&http.Cookie{Name: e.m.AccessTokenCookieName(), Value: oldAT, Path: "/"},
			&http.Cookie{Name: e.m.RefreshTokenCookieName(), Value: oldRT, Path: "/"},
		)
		r, v = b.me(t)
		require.Equal(t, http.StatusOK, r.status, r.body)
		require.Equal(t, "43", v["user"])
		require.Len(t, r.cookies, 3)
		for _, c := range r.cookies {
			require.True(t, c.HttpOnly && c.Secure, "cookie %s", c.Name)
			require.Positive(t, c.MaxAge)
		}
		require.NotEmpty(t, b.jarCookie(e.m.CookieName()))
		require.NotEqual(t, oldRT, b.jarCookie(e.m.RefreshTokenCookieName()))
		require.NotEqual(t, oldAT, b.jarCookie(e.m.AccessTokenCookieName()))
		require.Equal(t, 900, cookieNamed(r.cookies, e.m.AccessTokenCookieName()).MaxAge)
		r, v = b.me(t)
		require.Equal(t, "43", v["user"])
		require.Empty(t, r.cookies)
		require.Equal(t, int64(1), e.idp.refreshCalls.Load())

		// Signing out clears the token cookies too, so the client is not
		// signed straight back in.
		r = b.do(t, "POST", "/logout", url.Values{}, nil)
		require.Equal(t, http.StatusNoContent, r.status)
		r, _ = b.me(t)
		require.Equal(t, http.StatusUnauthorized, r.status)
	})
}

// TestHTTPConcurrentRefresh: browsers fire several requests at once with
// the same expired access token and refresh token; the upstream sees one
// refresh.
func TestHTTPConcurrentRefresh(t *testing.T) {
	e := newEnv(t, newMemory, envOptions{idpAlg: "ES256"})
	e.idp.mu.Lock()
	e.idp.refreshDelay = 100 * time.Millisecond
	e.idp.mu.Unlock()
	a := newApp(t, e)
	cookieHeader := fmt.Sprintf("%s=%s; %s=%s",
		e.m.AccessTokenCookieName(), e.idp.expiredToken(t, "42"),
		e.m.RefreshTokenCookieName(), e.idp.refreshToken("42"))

	const n = 6
	var wg sync.WaitGroup
	status := make([]int, n)
	sids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", a.srv.URL+"/me", nil)
			req.Header.Set("Cookie", cookieHeader)
			resp, err := a.srv.Client().Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			status[i] = resp.StatusCode
			var v map[string]string
			errs[i] = json.NewDecoder(resp.Body).Decode(&v)
			sids[i] = v["sid"]
		})
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, http.StatusOK, status[i])
		require.Equal(t, sids[0], sids[i])
	}
	require.Equal(t, int64(1), e.idp.refreshCalls.Load())
	require.Equal(t, 1, e.count(t, "42"))
}

// TestCredentials: the credential cookies are found among the site's
// other cookies, the first non-empty of duplicates wins (a planted cookie
// after the real one changes nothing), a name that only appears inside
// another cookie's name or value is not a match, and a bearer token takes
// the place of the access-token cookie.
func TestCredentials(t *testing.T) {
	m, err := manager.New(newMemory(t, nil), manager.Config{Development: true})
	require.NoError(t, err)
	dev := func(r *http.Request) *http.Request {
		r.Header.Set("User-Agent", "ua/1")
		r.RemoteAddr = "192.0.2.1:1234"
		return r
	}
	cases := []struct {
		name    string
		cookies []string // Cookie header lines
		auth    string
		want    manager.Credentials
	}{
		{"none", nil, "", manager.Credentials{}},
		{"among other cookies", []string{"_ga=1; session-token=s1; theme=dark; access-token=a1; refresh-token=r1; tz=UTC"}, "",
			manager.Credentials{SessionToken: "s1", AccessToken: "a1", RefreshToken: "r1"}},
		{"duplicates: first wins", []string{"session-token=s1; session-token=planted"}, "", manager.Credentials{SessionToken: "s1"}},
		{"duplicates: an empty one is skipped", []string{"session-token=; session-token=s2"}, "", manager.Credentials{SessionToken: "s2"}},
		{"second header line", []string{"theme=dark", "refresh-token=r2"}, "", manager.Credentials{RefreshToken: "r2"}},
		{"name inside another name or a value", []string{"my-session-token=x; note=session-token; access-token-old=y"}, "", manager.Credentials{}},
		{"quoted value", []string{`session-token="s3"`}, "", manager.Credentials{SessionToken: "s3"}},
		{"bearer over the access cookie", []string{"access-token=a1"}, "Bearer b1", manager.Credentials{AccessToken: "b1"}},
		{"not a bearer", []string{"access-token=a1"}, "Basic dXNlcjpwYXNz", manager.Credentials{AccessToken: "a1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dev(httptest.NewRequest("GET", "/", nil))
			for _, line := range tc.cookies {
				r.Header.Add("Cookie", line)
			}
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			tc.want.Device = store.Device{UserAgent: "ua/1", IP: "192.0.2.1"}
			require.Equal(t, tc.want, m.Credentials(r), "Credentials(%q, %q)", tc.cookies, tc.auth)
		})
	}
}

// TestGetServerSessionWithoutMiddleware: a plain store lookup per call.
func TestGetServerSessionWithoutMiddleware(t *testing.T) {
	e := newEnv(t, newMemory, envOptions{})
	tok, s, err := e.m.CreateSession(ctx, "alice", nil, store.Device{})
	require.NoError(t, err)
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: e.m.CookieName(), Value: tok})
	got, err := e.m.GetServerSession(req)
	require.NoError(t, err)
	require.Equal(t, s.ID, got.ID)
	_, ok := manager.FromContext(req.Context())
	require.False(t, ok)
	_, err = e.m.GetServerSession(httptest.NewRequest("GET", "/", nil))
	require.ErrorIs(t, err, manager.ErrNoSession)
}

// TestLogsNeverContainTokens runs every flow with debug logging and looks
// for any secret in the output.
func TestLogsNeverContainTokens(t *testing.T) {
	e := newEnv(t, newMemory, envOptions{idpAlg: "HS256", cfg: manager.Config{MaxSessionsPerUser: 2, IdleTimeout: time.Hour}})
	a := newApp(t, e)
	var secrets []string

	planted, _, err := e.m.CreateSession(ctx, "mallory", nil, store.Device{})
	require.NoError(t, err)
	secrets = append(secrets, planted)
	a.plant(&http.Cookie{Name: e.m.CookieName(), Value: planted, Path: "/"})
	a.login(t, "alice")
	secrets = append(secrets, a.jarCookie(e.m.CookieName()))
	e.clock.Advance(30 * time.Minute)
	r0, _ := a.me(t)
	require.Equal(t, http.StatusOK, r0.status)
	a.do(t, "POST", "/logout", url.Values{}, nil)

	at := e.idp.accessToken(t, "42")
	secrets = append(secrets, at)
	r := a.do(t, "GET", "/me", nil, http.Header{"Authorization": {"Bearer " + at}})
	require.Equal(t, http.StatusOK, r.status)
	secrets = append(secrets, a.jarCookie(e.m.CookieName()))

	b := newApp(t, e)
	rt, exp := e.idp.refreshToken("42"), e.idp.expiredToken(t, "42")
	secrets = append(secrets, rt, exp)
	b.plant(&http.Cookie{Name: e.m.AccessTokenCookieName(), Value: exp, Path: "/"},
		&http.Cookie{Name: e.m.RefreshTokenCookieName(), Value: rt, Path: "/"})
	r, _ = b.me(t)
	require.Equal(t, http.StatusOK, r.status)
	for _, n := range []string{e.m.CookieName(), e.m.AccessTokenCookieName(), e.m.RefreshTokenCookieName()} {
		secrets = append(secrets, b.jarCookie(n))
	}
	refreshed := b.jarCookie(e.m.CookieName())

	// Failures log too: rejected tokens, refused refreshes, a mismatch.
	bad := e.idp.sign(t, e.idp.claims("42", time.Hour)) + "x"
	secrets = append(secrets, bad)
	_, err = e.m.Resolve(ctx, manager.Credentials{AccessToken: bad})
	require.ErrorIs(t, err, manager.ErrNoSession)
	_, err = e.m.Resolve(ctx, manager.Credentials{RefreshToken: rt}) // already used
	require.ErrorIs(t, err, manager.ErrNoSession)
	e.idp.mu.Lock()
	e.idp.idOverride["44"] = "45"
	e.idp.mu.Unlock()
	mismatch := e.idp.accessToken(t, "44")
	secrets = append(secrets, mismatch)
	_, err = e.m.Resolve(ctx, manager.Credentials{AccessToken: mismatch})
	require.ErrorIs(t, err, manager.ErrNoSession)
	e.clock.Advance(2 * time.Hour) // idle
	_, err = e.m.Lookup(ctx, refreshed)
	require.ErrorIs(t, err, manager.ErrNoSession)

	logs := e.logs.String()
	for _, want := range []string{"signed in", "signed out", "session created", "access token rejected",
		"upstream refused a refresh token", "does not match", "idle session ended", "session_id"} {
		require.Contains(t, logs, want, "the flow did not log %q, so the check below proves little", want)
	}
	for _, s := range secrets {
		require.NotEmpty(t, s)
		require.NotContains(t, logs, s)
		// Also no telling fragment: a token's middle third.
		require.NotContains(t, logs, s[len(s)/3:2*len(s)/3])
	}
}

// TestHTTPDeadTokenCookiesCleared: a refresh token the upstream refused is
// cleared, so the client does not send it to the upstream on every
// request.
func TestHTTPDeadTokenCookiesCleared(t *testing.T) {
	e := newEnv(t, newMemory, envOptions{idpAlg: "HS256"})
	a := newApp(t, e)
	a.plant(
		&http.Cookie{Name: e.m.CookieName(), Value: must(store.NewToken("42")), Path: "/"},
		&http.Cookie{Name: e.m.AccessTokenCookieName(), Value: e.idp.expiredToken(t, "42"), Path: "/"},
		&http.Cookie{Name: e.m.RefreshTokenCookieName(), Value: "rt-revoked", Path: "/"},
	)
	r := a.do(t, "GET", "/public", nil, nil)
	require.Equal(t, "anonymous", r.body)
	require.Len(t, r.cookies, 3)
	for _, c := range r.cookies {
		require.Equal(t, -1, c.MaxAge, c.Name)
	}
	require.Equal(t, int64(1), e.idp.refreshCalls.Load())
	require.Empty(t, a.jar.Cookies(a.url))
	r = a.do(t, "GET", "/public", nil, nil)
	require.Equal(t, "anonymous", r.body)
	require.Equal(t, int64(1), e.idp.refreshCalls.Load())

	// A bad Authorization header does not clear a cookie it overrode.
	b := newApp(t, e)
	at := e.idp.accessToken(t, "42")
	b.plant(&http.Cookie{Name: e.m.AccessTokenCookieName(), Value: at, Path: "/"})
	r = b.do(t, "GET", "/public", nil, http.Header{"Authorization": {"Bearer nope"}})
	require.Equal(t, "anonymous", r.body)
	require.Empty(t, r.cookies)
	require.Equal(t, at, b.jarCookie(e.m.AccessTokenCookieName()))
}

// TestHugeTokenBoundedMemory: a 1 MB token of dots, as a bearer header or
// as Resolve input, is refused without copying or parsing it.
func TestHugeTokenBoundedMemory(t *testing.T) {
	e := newEnv(t, newMemory, envOptions{idpAlg: "HS256"})
	huge := strings.Repeat(".", 1<<20)
	h := e.m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := manager.FromContext(r.Context()); ok {
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("Authorization", "Bearer "+huge)

	const rounds = 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range rounds {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Equal(t, http.StatusOK, rec.Code)
		_, err := e.m.Resolve(ctx, manager.Credentials{AccessToken: huge, SessionToken: huge, RefreshToken: ""})
		require.ErrorIs(t, err, manager.ErrNoSession)
	}
	runtime.ReadMemStats(&after)
	perRound := (after.TotalAlloc - before.TotalAlloc) / rounds
	require.Less(t, perRound, uint64(64<<10), "a 1 MB token cost %d bytes per request", perRound)
	require.Zero(t, e.store.calls())
	require.Zero(t, e.idp.userInfoCalls.Load())
}

// TestPerRequestCache: however many times a request asks, and however
// often the middleware is stacked, the store is read once per request.
func TestPerRequestCache(t *testing.T) {
	eachBackend(t, func(t *testing.T, newStore newStoreFunc) {
		e := newEnv(t, newStore, envOptions{})
		tok, s, err := e.m.CreateSession(ctx, "alice", nil, store.Device{})
		require.NoError(t, err)
		reads := 0
		h := e.m.Middleware(e.m.Middleware(e.m.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for range 10 {
				got, err := e.m.GetServerSession(r)
				if err != nil || got.ID != s.ID {
					http.Error(w, "wrong session", http.StatusInternalServerError)
					return
				}
				reads++
			}
		}))))
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		for i := range 3 {
			req, err := http.NewRequest("GET", srv.URL, nil)
			require.NoError(t, err)
			req.AddCookie(&http.Cookie{Name: e.m.CookieName(), Value: tok})
			resp, err := srv.Client().Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, int64(i+1), e.store.gets.Load(), "store reads after %d requests", i+1)
		}
		require.Equal(t, 30, reads)
		require.Zero(t, e.store.touches.Load())

		// Without Middleware every call reads the store.
		req := httptest.NewRequest("GET", "/", nil)
		req.AddCookie(&http.Cookie{Name: e.m.CookieName(), Value: tok})
		for range 2 {
			_, err := e.m.GetServerSession(req)
			require.NoError(t, err)
		}
		require.Equal(t, int64(5), e.store.gets.Load())
	})
}
