package upstream_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sessiond/sessiond/manager/upstream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	accessToken  = "access-SECRET-abc123"
	refreshToken = "refresh-SECRET-xyz789"
	// bodySecret appears in every response body a test serves: no error may quote it.
	bodySecret = "BODY-SECRET-42"
)

// server starts an upstream whose handler is h, under a base path so path
// joining is exercised, and returns a Client for it.
func server(t *testing.T, cfg upstream.Config, h http.HandlerFunc) *upstream.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.BaseURL = srv.URL + "/base/"
	c, err := upstream.New(cfg)
	require.NoError(t, err)
	return c
}

func requireClean(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{accessToken, refreshToken, bodySecret} {
		require.NotContains(t, err.Error(), s)
	}
}

func TestFetchUser(t *testing.T) {
	var got *http.Request
	c := server(t, upstream.Config{}, func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"u1","email":"a@example.com","name":"`+bodySecret+`"}`)
	})
	u, err := c.FetchUser(context.Background(), accessToken)
	require.NoError(t, err)
	require.Equal(t, "u1", u.ID)
	require.JSONEq(t, `{"id":"u1","email":"a@example.com","name":"`+bodySecret+`"}`, string(u.Profile))
	require.Equal(t, http.MethodGet, got.Method)
	require.Equal(t, "/base/api/v1/users/me", got.URL.Path)
	require.Equal(t, "Bearer "+accessToken, got.Header.Get("Authorization"))
	require.Equal(t, "application/json", got.Header.Get("Accept"))
}

func TestFetchUserIDs(t *testing.T) {
	for name, tt := range map[string]struct {
		cfg    upstream.Config
		body   string
		wantID string
	}{
		"string":                 {body: `{"id":"abc"}`, wantID: "abc"},
		"integer beyond float64": {body: `{"id":9007199254740993}`, wantID: "9007199254740993"},
		"negative integer":       {body: `{"id":-7}`, wantID: "-7"},
		"huge integer":           {body: `{"id":123456789012345678901234567890}`, wantID: "123456789012345678901234567890"},
		"custom field":           {cfg: upstream.Config{UserIDField: "user_id"}, body: `{"id":"x","user_id":12}`, wantID: "12"},
		"custom path":            {cfg: upstream.Config{UserInfoPath: "/me?fields=all"}, body: `{"id":"p"}`, wantID: "p"},
	} {
		t.Run(name, func(t *testing.T) {
			var path string
			c := server(t, tt.cfg, func(w http.ResponseWriter, r *http.Request) {
				path = r.URL.RequestURI()
				_, _ = io.WriteString(w, tt.body)
			})
			u, err := c.FetchUser(context.Background(), accessToken)
			require.NoError(t, err)
			if tt.cfg.UserInfoPath != "" {
				require.Equal(t, "/base/me?fields=all", path)
			}
			require.Equal(t, tt.wantID, u.ID, "FetchUser(%s).ID", tt.body)
			require.Equal(t, tt.body, string(u.Profile))
		})
	}
}

func TestFetchUserErrors(t *testing.T) {
	big := `{"id":"u1","pad":"` + strings.Repeat("x", 2048) + `"}`
	for name, tt := range map[string]struct {
		status int
		body   string
		want   error
	}{
		"401":                 {status: 401, want: upstream.ErrUnauthorized},
		"403":                 {status: 403, want: upstream.ErrUnauthorized},
		"400":                 {status: 400, want: upstream.ErrUnavailable},
		"404":                 {status: 404, want: upstream.ErrUnavailable},
		"429":                 {status: 429, want: upstream.ErrUnavailable},
		"500":                 {status: 500, want: upstream.ErrUnavailable},
		"502":                 {status: 502, want: upstream.ErrUnavailable},
		"503":                 {status: 503, want: upstream.ErrUnavailable},
		"204":                 {status: 204, want: upstream.ErrUnavailable},
		"oversize":            {status: 200, body: big, want: upstream.ErrUnavailable},
		"not JSON":            {status: 200, body: `<html>` + bodySecret, want: upstream.ErrUnavailable},
		"array":               {status: 200, body: `[{"id":"u1"}]`, want: upstream.ErrUnavailable},
		"string":              {status: 200, body: `"u1"`, want: upstream.ErrUnavailable},
		"null":                {status: 200, body: `null`, want: upstream.ErrUnavailable},
		"empty body":          {status: 200, body: ``, want: upstream.ErrUnavailable},
		"trailing data":       {status: 200, body: `{"id":"u1"} {"id":"u2"}`, want: upstream.ErrUnavailable},
		"missing id":          {status: 200, body: `{"name":"` + bodySecret + `"}`, want: upstream.ErrUnavailable},
		"null id":             {status: 200, body: `{"id":null}`, want: upstream.ErrUnavailable},
		"empty id":            {status: 200, body: `{"id":""}`, want: upstream.ErrUnavailable},
		"fractional id":       {status: 200, body: `{"id":1.5}`, want: upstream.ErrUnavailable},
		"exponent id":         {status: 200, body: `{"id":1e3}`, want: upstream.ErrUnavailable},
		"boolean id":          {status: 200, body: `{"id":true}`, want: upstream.ErrUnavailable},
		"object id":           {status: 200, body: `{"id":{"v":1}}`, want: upstream.ErrUnavailable},
		"id with control chr": {status: 200, body: `{"id":"a\nb"}`, want: upstream.ErrUnavailable},
	} {
		t.Run(name, func(t *testing.T) {
			c := server(t, upstream.Config{MaxResponseBytes: 1024}, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				if tt.body == "" && tt.status != 200 {
					tt.body = `{"error":"` + bodySecret + `"}`
				}
				_, _ = io.WriteString(w, tt.body)
			})
			u, err := c.FetchUser(context.Background(), accessToken)
			require.ErrorIs(t, err, tt.want, "FetchUser(%s) = %v, want %v", name, err, tt.want)
			other := upstream.ErrUnauthorized
			if tt.want == upstream.ErrUnauthorized {
				other = upstream.ErrUnavailable
			}
			require.NotErrorIs(t, err, other)
			require.Nil(t, u)
			requireClean(t, err)
			if name == "oversize" {
				require.Contains(t, err.Error(), "response too large")
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	var leaked atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Add(1)
		_, _ = io.WriteString(w, `{"id":"u1","access_token":"a"}`)
	}))
	t.Cleanup(elsewhere.Close)
	c := server(t, upstream.Config{}, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL, http.StatusTemporaryRedirect)
	})
	_, err := c.FetchUser(context.Background(), accessToken)
	require.ErrorIs(t, err, upstream.ErrUnavailable)
	require.Contains(t, err.Error(), "status 307")
	_, err = c.Refresh(context.Background(), refreshToken)
	require.ErrorIs(t, err, upstream.ErrUnavailable)
	require.Zero(t, leaked.Load(), "no token may follow a redirect")
}

func TestFetchUserBadTokenMakesNoCall(t *testing.T) {
	var calls atomic.Int32
	c := server(t, upstream.Config{}, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	for _, tok := range []string{"", "a b", "a\r\nX-Injected: 1", "tok;en"} {
		_, err := c.FetchUser(context.Background(), tok)
		require.ErrorIs(t, err, upstream.ErrUnauthorized, "FetchUser(%q)", tok)
	}
	require.Zero(t, calls.Load())
}

// slowServer answers only after its request is cancelled (or 10 s).
func slowServer(t *testing.T, cfg upstream.Config) *upstream.Client {
	t.Helper()
	return server(t, cfg, func(w http.ResponseWriter, r *http.Request) {
		// Reading the body lets the server notice the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
}

func TestTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	c := slowServer(t, upstream.Config{Timeout: timeout})

	start := time.Now()
	_, err := c.FetchUser(context.Background(), accessToken)
	require.ErrorIs(t, err, upstream.ErrUnavailable)
	require.Contains(t, err.Error(), "timeout")
	require.Less(t, time.Since(start), 10*timeout, "FetchUser must give up after about Timeout")

	start = time.Now()
	_, err = c.Refresh(context.Background(), refreshToken)
	require.ErrorIs(t, err, upstream.ErrUnavailable)
	require.Less(t, time.Since(start), 10*timeout, "Refresh must give up after about Timeout")
}

func TestCallerContextCancelled(t *testing.T) {
	c := slowServer(t, upstream.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.FetchUser(ctx, accessToken)
	require.ErrorIs(t, err, upstream.ErrUnavailable)
}

func TestNetworkError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := upstream.New(upstream.Config{BaseURL: url})
	require.NoError(t, err)
	_, err = c.FetchUser(context.Background(), accessToken)
	require.ErrorIs(t, err, upstream.ErrUnavailable)
	requireClean(t, err)
	_, err = c.Refresh(context.Background(), refreshToken)
	require.ErrorIs(t, err, upstream.ErrUnavailable)
	requireClean(t, err)
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]upstream.Config{
		"no base URL":        {},
		"relative base URL":  {BaseURL: "/api"},
		"ftp":                {BaseURL: "ftp://example.com"},
		"credentials in URL": {BaseURL: "https://user:pw@example.com"},
		"query in URL":       {BaseURL: "https://example.com?x=1"},
		"path without slash": {BaseURL: "https://example.com", UserInfoPath: "me"},
		"absolute path URL":  {BaseURL: "https://example.com", RefreshPath: "https://evil.example/refresh"},
	} {
		c, err := upstream.New(cfg)
		require.Error(t, err, "New(%s)", name)
		require.Nil(t, c)
	}
}

func TestRefresh(t *testing.T) {
	var got seenRequest
	c := server(t, upstream.Config{}, func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.ctype = r.Method, r.URL.Path, r.Header.Get("Content-Type")
		b, _ := io.ReadAll(r.Body)
		got.form = string(b)
		got.query = r.URL.RawQuery
		_, _ = io.WriteString(w, `{"access_token":"new-access","refresh_token":"new-refresh","expires_in":3600,"token_type":"Bearer"}`)
	})
	before := time.Now()
	tok, err := c.Refresh(context.Background(), refreshToken)
	require.NoError(t, err)
	require.Equal(t, "new-access", tok.AccessToken)
	require.Equal(t, "new-refresh", tok.RefreshToken)
	require.WithinRange(t, tok.ExpiresAt, before.Add(time.Hour), time.Now().Add(time.Hour))
	require.Equal(t, http.MethodPost, got.method)
	require.Equal(t, "/base/api/v1/auth/refresh", got.path)
	require.Equal(t, "application/x-www-form-urlencoded", got.ctype)
	require.Equal(t, "grant_type=refresh_token&refresh_token="+refreshToken, got.form)
	require.Empty(t, got.query, "the refresh token never travels in the URL")
}

type seenRequest struct{ method, path, ctype, form, query string }

func TestRefreshResponseShapes(t *testing.T) {
	for name, tt := range map[string]struct {
		body        string
		wantAccess  string
		wantRefresh string
		wantExpiry  bool
	}{
		"camelCase":           {body: `{"accessToken":"a2","refreshToken":"r2","expiresIn":60}`, wantAccess: "a2", wantRefresh: "r2", wantExpiry: true},
		"no rotation":         {body: `{"access_token":"a2"}`, wantAccess: "a2", wantRefresh: refreshToken},
		"expires_in a string": {body: `{"access_token":"a2","expires_in":"60"}`, wantAccess: "a2", wantRefresh: refreshToken, wantExpiry: true},
	} {
		t.Run(name, func(t *testing.T) {
			c := server(t, upstream.Config{}, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, tt.body) })
			tok, err := c.Refresh(context.Background(), refreshToken)
			require.NoError(t, err)
			require.Equal(t, tt.wantAccess, tok.AccessToken)
			require.Equal(t, tt.wantRefresh, tok.RefreshToken)
			require.Equal(t, tt.wantExpiry, !tok.ExpiresAt.IsZero())
		})
	}
}

func TestRefreshErrors(t *testing.T) {
	for name, tt := range map[string]struct {
		status int
		body   string
		want   error
	}{
		"400 invalid_grant":    {status: 400, body: `{"error":"invalid_grant","error_description":"` + bodySecret + `"}`, want: upstream.ErrUnauthorized},
		"400 other":            {status: 400, body: `{"error":"invalid_request"}`, want: upstream.ErrUnavailable},
		"400 not JSON":         {status: 400, body: bodySecret, want: upstream.ErrUnavailable},
		"401":                  {status: 401, want: upstream.ErrUnauthorized},
		"403":                  {status: 403, want: upstream.ErrUnauthorized},
		"429":                  {status: 429, want: upstream.ErrUnavailable},
		"500":                  {status: 500, want: upstream.ErrUnavailable},
		"503":                  {status: 503, want: upstream.ErrUnavailable},
		"no access token":      {status: 200, body: `{"refresh_token":"` + bodySecret + `"}`, want: upstream.ErrUnavailable},
		"not an object":        {status: 200, body: `["a"]`, want: upstream.ErrUnavailable},
		"bad JSON":             {status: 200, body: `{"access_token":`, want: upstream.ErrUnavailable},
		"wrong types":          {status: 200, body: `{"access_token":42}`, want: upstream.ErrUnavailable},
		"negative expires_in":  {status: 200, body: `{"access_token":"a","expires_in":-5}`, want: upstream.ErrUnavailable},
		"garbage expires_in":   {status: 200, body: `{"access_token":"a","expires_in":"soon"}`, want: upstream.ErrUnavailable},
		"token with a newline": {status: 200, body: `{"access_token":"a\nSet-Cookie: x"}`, want: upstream.ErrUnavailable},
		"oversize":             {status: 200, body: `{"access_token":"` + strings.Repeat("a", 2048) + `"}`, want: upstream.ErrUnavailable},
	} {
		t.Run(name, func(t *testing.T) {
			c := server(t, upstream.Config{MaxResponseBytes: 1024}, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			tok, err := c.Refresh(context.Background(), refreshToken)
			require.ErrorIs(t, err, tt.want, "Refresh(%s) = %v, want %v", name, err, tt.want)
			require.Nil(t, tok)
			requireClean(t, err)
		})
	}
}

func TestRefreshEmptyTokenMakesNoCall(t *testing.T) {
	var calls atomic.Int32
	c := server(t, upstream.Config{}, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	_, err := c.Refresh(context.Background(), "")
	require.ErrorIs(t, err, upstream.ErrUnauthorized)
	require.Zero(t, calls.Load())
}

// gatedRefresh is an upstream refresh endpoint that counts calls and holds
// each until the test opens the gate.
type gatedRefresh struct {
	calls     atomic.Int32
	gate      chan struct{}
	cancelled atomic.Bool // the upstream request's context ended early
}

func newGatedRefresh(t *testing.T) (*gatedRefresh, *upstream.Client) {
	t.Helper()
	g := &gatedRefresh{gate: make(chan struct{})}
	c := server(t, upstream.Config{Timeout: 10 * time.Second}, func(w http.ResponseWriter, r *http.Request) {
		n := g.calls.Add(1)
		// Reading the body lets the server notice a cancelled client.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-g.gate:
		case <-r.Context().Done():
			g.cancelled.Store(true)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token":  "access-" + string(rune('0'+n)),
			"refresh_token": "refresh-" + string(rune('0'+n)),
			"expires_in":    60,
		})
	})
	return g, c
}

func TestRefreshSingleflight(t *testing.T) {
	g, c := newGatedRefresh(t)
	const callers = 50
	var joined sync.WaitGroup
	joined.Add(callers)
	upstream.SetRefreshWaitingHook(t.Cleanup, joined.Done)

	results := make([]*upstream.Tokens, callers)
	errs := make([]error, callers)
	var done sync.WaitGroup
	for i := range callers {
		done.Go(func() { results[i], errs[i] = c.Refresh(context.Background(), refreshToken) })
	}
	joined.Wait() // every caller is waiting on the one shared call
	close(g.gate)
	done.Wait()

	require.EqualValues(t, 1, g.calls.Load(), "%d concurrent Refresh calls with one token", callers)
	for i := range callers {
		require.NoError(t, errs[i])
		require.Equal(t, *results[0], *results[i])
	}
	require.Equal(t, "access-1", results[0].AccessToken)
	results[0].AccessToken = "changed"
	require.Equal(t, "access-1", results[1].AccessToken, "each caller gets its own copy")

	// The shared call is over: the next refresh is a new upstream call.
	upstream.SetRefreshWaitingHook(t.Cleanup, nil)
	again, err := c.Refresh(context.Background(), refreshToken)
	require.NoError(t, err)
	require.Equal(t, "access-2", again.AccessToken)
}

func TestRefreshDistinctTokensAreNotShared(t *testing.T) {
	g, c := newGatedRefresh(t)
	var joined sync.WaitGroup
	joined.Add(2)
	upstream.SetRefreshWaitingHook(t.Cleanup, joined.Done)
	var done sync.WaitGroup
	for _, tok := range []string{"token-a", "token-b"} {
		done.Go(func() {
			if _, err := c.Refresh(context.Background(), tok); err != nil {
				t.Errorf("Refresh(%s) = %v", tok, err)
			}
		})
	}
	joined.Wait()
	require.Eventually(t, func() bool { return g.calls.Load() == 2 }, 5*time.Second, time.Millisecond)
	close(g.gate)
	done.Wait()
	require.EqualValues(t, 2, g.calls.Load())
}

// TestRefreshFirstCallerCancelled: the caller that started the shared call
// goes away; the others still get the result, and the upstream call itself
// was not cancelled.
func TestRefreshFirstCallerCancelled(t *testing.T) {
	g, c := newGatedRefresh(t)
	const callers = 5
	var joined sync.WaitGroup
	joined.Add(1)
	upstream.SetRefreshWaitingHook(t.Cleanup, joined.Done)

	firstCtx, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, err := c.Refresh(firstCtx, refreshToken)
		firstErr <- err
	}()
	joined.Wait()
	require.Eventually(t, func() bool { return g.calls.Load() == 1 }, 5*time.Second, time.Millisecond)

	joined.Add(callers)
	results := make([]*upstream.Tokens, callers)
	errs := make([]error, callers)
	var done sync.WaitGroup
	for i := range callers {
		done.Go(func() { results[i], errs[i] = c.Refresh(context.Background(), refreshToken) })
	}
	joined.Wait()

	cancelFirst()
	err := <-firstErr
	require.ErrorIs(t, err, upstream.ErrUnavailable)
	require.ErrorIs(t, err, context.Canceled)

	close(g.gate)
	done.Wait()
	require.EqualValues(t, 1, g.calls.Load())
	require.False(t, g.cancelled.Load(), "the shared upstream call must survive its first caller")
	for i := range callers {
		require.NoError(t, errs[i])
		require.Equal(t, "access-1", results[i].AccessToken)
	}
}

func TestRefreshAlreadyCancelledMakesNoCall(t *testing.T) {
	var calls atomic.Int32
	c := server(t, upstream.Config{}, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Refresh(ctx, refreshToken)
	require.ErrorIs(t, err, upstream.ErrUnavailable)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, calls.Load(), "a detached call nobody waits for could spend a rotating refresh token")
}

func TestRefreshReuseWindow(t *testing.T) {
	var calls atomic.Int32
	fail := atomic.Bool{}
	const window = 50 * time.Millisecond
	c := server(t, upstream.Config{RefreshReuseWindow: window}, func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if fail.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		_, _ = io.WriteString(w, `{"access_token":"a`+string(rune('0'+n))+`","refresh_token":"r`+string(rune('0'+n))+`"}`)
	})
	first, err := c.Refresh(context.Background(), refreshToken)
	require.NoError(t, err)
	again, err := c.Refresh(context.Background(), refreshToken)
	require.NoError(t, err)
	require.Equal(t, *first, *again, "a late request with the old refresh token gets the same result")
	require.EqualValues(t, 1, calls.Load())

	other, err := c.Refresh(context.Background(), "another-token")
	require.NoError(t, err)
	require.Equal(t, "a2", other.AccessToken, "another token is its own call")

	time.Sleep(window + 20*time.Millisecond)
	after, err := c.Refresh(context.Background(), refreshToken)
	require.NoError(t, err)
	require.Equal(t, "a3", after.AccessToken, "the window ended")

	// Failures are never kept.
	fail.Store(true)
	_, err = c.Refresh(context.Background(), "failing-token")
	require.ErrorIs(t, err, upstream.ErrUnavailable)
	fail.Store(false)
	ok, err := c.Refresh(context.Background(), "failing-token")
	require.NoError(t, err)
	require.Equal(t, "a5", ok.AccessToken)
}
