package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/manager/jwtverify"
	"github.com/sessiond/sessiond/manager/upstream"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/memory"
)

// lockedBuffer collects log output written from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// envOptions tune newTestEnv.
type envOptions struct {
	keys        []string
	maxBody     int64
	failRate    float64
	failBurst   int
	store       store.Store // default: a fresh memory store
	mcfg        func(*manager.Config)
	ping        func(context.Context) error
	withJWT     bool // an upstream and an HS256 verifier (see testUpstream)
	upstreamURL string
	quiet       bool // discard logs (benchmarks)
}

// testEnv is the real API handler over the real manager, served by httptest.
type testEnv struct {
	srv  *httptest.Server
	api  *api
	mgr  *manager.Manager
	logs *lockedBuffer
	c    *client.Client // authenticated with the first key, if any
	up   *testUpstream  // nil unless withJWT
}

func newTestEnv(t testing.TB, opts envOptions) *testEnv {
	t.Helper()
	logs := &lockedBuffer{}
	var log *slog.Logger
	if opts.quiet {
		// A real deployment logs every request at Info; the handler still
		// formats the line, only the write is dropped.
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	} else {
		log = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	st := opts.store
	if st == nil {
		ms := memory.New(memory.Options{})
		t.Cleanup(func() { ms.Close() })
		st = ms
	}
	met := newMetrics()
	mc := manager.Config{Logger: log, Hooks: met.hooks()}
	env := &testEnv{logs: logs}
	if opts.withJWT {
		env.up = newTestUpstream(t)
		url := env.up.srv.URL
		if opts.upstreamURL != "" {
			url = opts.upstreamURL
		}
		up, err := upstream.New(upstream.Config{BaseURL: url, Timeout: 2 * time.Second})
		require.NoError(t, err)
		v, err := jwtverify.New(context.Background(), jwtverify.Config{HMACSecrets: [][]byte{testJWTSecret}})
		require.NoError(t, err)
		t.Cleanup(func() { v.Close() })
		mc.JWT, mc.Upstream = v, up
	}
	if opts.mcfg != nil {
		opts.mcfg(&mc)
	}
	mgr, err := manager.New(st, mc)
	require.NoError(t, err)
	if opts.maxBody == 0 {
		opts.maxBody = defaultMaxBodyBytes
	}
	if opts.failBurst == 0 {
		opts.failBurst = 1000
	}
	if opts.failRate == 0 {
		opts.failRate = 1000
	}
	env.mgr = mgr
	env.api = &api{
		mgr:            mgr,
		log:            log,
		met:            met,
		auth:           newAuthenticator(opts.keys, false),
		limiter:        newFailureLimiter(opts.failRate, opts.failBurst, time.Now),
		ping:           opts.ping,
		maxBody:        opts.maxBody,
		requestTimeout: 5 * time.Second,
		metricsOnMain:  true,
	}
	env.srv = httptest.NewServer(env.api.handler())
	t.Cleanup(env.srv.Close)
	var copts []client.Option
	if len(opts.keys) > 0 {
		copts = append(copts, client.WithAPIKey(opts.keys[0]))
	}
	env.c, err = client.New(env.srv.URL, copts...)
	require.NoError(t, err)
	return env
}

// do sends a raw request and returns the status and body.
func (e *testEnv) do(t *testing.T, method, path string, body string, header map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, r)
	require.NoError(t, err)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, data
}

// requireCode asserts an error answer with this status and code.
func requireCode(t *testing.T, status int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	require.Equal(t, wantStatus, status, "status; body %s", body)
	var eb client.ErrorBody
	require.NoError(t, json.Unmarshal(body, &eb), "body %s", body)
	require.Equal(t, wantCode, eb.Error.Code, "code; body %s", body)
	require.NotEmpty(t, eb.Error.Message)
}

// requireClientCode asserts that err is a *client.Error with this status and code.
func requireClientCode(t *testing.T, err error, wantStatus int, wantCode string) {
	t.Helper()
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, wantStatus, ce.Status, "status of %v", err)
	require.Equal(t, wantCode, ce.Code, "code of %v", err)
}

// testJWTSecret signs the access tokens of testUpstream.
var testJWTSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

// testUpstream is a fake upstream API: /api/v1/users/me answers the user of
// a valid access token; /api/v1/auth/refresh exchanges the refresh token
// "good-refresh-token" for a fresh access token. down makes both answer 503.
type testUpstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	down bool
}

func newTestUpstream(t testing.TB) *testUpstream {
	t.Helper()
	u := &testUpstream{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/users/me", func(w http.ResponseWriter, r *http.Request) {
		if u.isDown() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		claims := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return testJWTSecret, nil }); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": claims["sub"], "name": "From Upstream"})
	})
	mux.HandleFunc("POST /api/v1/auth/refresh", func(w http.ResponseWriter, r *http.Request) {
		if u.isDown() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if r.FormValue("refresh_token") != "good-refresh-token" {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token":  signJWT(t, "carol", time.Hour),
			"refresh_token": "rotated-refresh-token",
			"expires_in":    3600,
		})
	})
	u.srv = httptest.NewServer(mux)
	t.Cleanup(u.srv.Close)
	return u
}

func (u *testUpstream) isDown() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.down
}

func (u *testUpstream) setDown(d bool) {
	u.mu.Lock()
	u.down = d
	u.mu.Unlock()
}

// signJWT returns an HS256 access token for sub expiring in ttl (negative:
// already expired).
func signJWT(t testing.TB, sub string, ttl time.Duration) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": sub,
		"exp": time.Now().Add(ttl).Unix(),
		"iat": time.Now().Add(-time.Minute).Unix(),
	}).SignedString(testJWTSecret)
	require.NoError(t, err)
	return tok
}
