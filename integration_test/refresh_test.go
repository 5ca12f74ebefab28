package integration_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// rotatingAuth is a fake upstream that rotates refresh tokens, as OAuth
// servers with reuse detection do: each refresh token is good for one
// exchange; a second use is refused (and counted: it is what the
// coordination must prevent). It also answers the user-info endpoint.
type rotatingAuth struct {
	srv      *httptest.Server
	secret   string
	delay    time.Duration
	mu       sync.Mutex
	valid    map[string]string // refresh token -> user ID
	refresh  atomic.Int64      // refresh calls
	reuses   atomic.Int64      // refresh calls with a spent token
	userInfo atomic.Int64
}

func startRotatingAuth(t *testing.T, delay time.Duration) *rotatingAuth {
	t.Helper()
	a := &rotatingAuth{secret: randomHex(t, 32), delay: delay, valid: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/auth/refresh", a.serveRefresh)
	mux.HandleFunc("GET /api/v1/users/me", a.serveUser)
	a.srv = httptest.NewServer(mux)
	t.Cleanup(a.srv.Close)
	return a
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

func (a *rotatingAuth) args() []string { return []string{"--upstream-url", a.srv.URL} }
func (a *rotatingAuth) env() []string  { return []string{"SESSIOND_JWT_HMAC_SECRETS=" + a.secret} }

// issue returns a refresh token for userID, good for one exchange.
func (a *rotatingAuth) issue(t *testing.T, userID string) string {
	rt := "rt-" + randomHex(t, 16)
	a.mu.Lock()
	a.valid[rt] = userID
	a.mu.Unlock()
	return rt
}

func (a *rotatingAuth) access(t *testing.T, userID string, exp time.Time) string {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: userID, IssuedAt: jwt.NewNumericDate(exp.Add(-time.Hour)), ExpiresAt: jwt.NewNumericDate(exp),
	}).SignedString([]byte(a.secret))
	require.NoError(t, err)
	return tok
}

func (a *rotatingAuth) serveRefresh(w http.ResponseWriter, r *http.Request) {
	a.refresh.Add(1)
	time.Sleep(a.delay) // keeps the refresh in flight while the others arrive
	old := r.FormValue("refresh_token")
	a.mu.Lock()
	uid, ok := a.valid[old]
	delete(a.valid, old)
	var next string
	if ok {
		var b [16]byte
		_, _ = rand.Read(b[:])
		next = "rt-" + hex.EncodeToString(b[:])
		a.valid[next] = uid
	}
	a.mu.Unlock()
	if !ok {
		a.reuses.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
		return
	}
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject: uid, IssuedAt: jwt.NewNumericDate(time.Now()), ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute)),
	}).SignedString([]byte(a.secret))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "refresh_token": next, "expires_in": 60})
}

func (a *rotatingAuth) serveUser(w http.ResponseWriter, r *http.Request) {
	a.userInfo.Add(1)
	raw, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var claims jwt.RegisteredClaims
	if _, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return []byte(a.secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"id": claims.Subject})
}

// Refresh coordination across instances: 50 concurrent resolves carrying
// the same expired access token and refresh token, spread over three
// sessiond processes sharing one Redis, make exactly one upstream refresh;
// all 50 succeed with the same new tokens, and the rotating upstream never
// sees the spent refresh token again.
func TestRefreshCoordinatedAcrossInstances(t *testing.T) {
	rs := redistest.StartServer(t)
	auth := startRotatingAuth(t, 300*time.Millisecond)
	ps := sessiondtest.StartN(t, 3, sessiondtest.Options{
		APIKey:   sessiondtest.APIKey,
		RedisURL: rs.URL(),
		Args:     auth.args(),
		Env:      auth.env(),
	})
	expired := auth.access(t, "alice", time.Now().Add(-time.Minute))
	refresh := auth.issue(t, "alice")

	const n = 50
	res := make([]*client.Resolution, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res[i], errs[i] = ps[i%3].Client().Resolve(context.Background(), client.ResolveRequest{
				AccessToken: expired, RefreshToken: refresh,
			})
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(began)

	ok := 0
	newAccess, newRefresh := "", ""
	for i := range n {
		require.NoError(t, errs[i], "resolve #%d (instance %d)", i, i%3)
		require.Equal(t, "refresh", res[i].Source)
		require.Equal(t, "alice", res[i].Session.UserID)
		if i == 0 {
			newAccess, newRefresh = res[0].AccessToken, res[0].RefreshToken
		}
		require.Equal(t, newAccess, res[i].AccessToken, "resolve #%d got other tokens", i)
		require.Equal(t, newRefresh, res[i].RefreshToken, "resolve #%d got another refresh token", i)
		ok++
	}
	t.Logf("REPORT refresh: %d/%d resolves OK across 3 instances in %v; upstream refresh calls %d, spent-token reuses %d, user fetches %d",
		ok, n, took.Round(time.Millisecond), auth.refresh.Load(), auth.reuses.Load(), auth.userInfo.Load())
	require.EqualValues(t, 1, auth.refresh.Load(), "upstream refresh calls")
	require.Zero(t, auth.reuses.Load())
	require.NotEmpty(t, newAccess)
	require.NotEqual(t, refresh, newRefresh, "the upstream rotated the refresh token")

	// The tokens were in Redis only encrypted and under a hash, and never
	// in a log line.
	ctx := context.Background()
	keys, err := rs.Client(t).Keys(ctx, "*refresh:*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys, "no shared refresh result in Redis: the test did not exercise coordination")
	for _, k := range keys {
		v, err := rs.Client(t).Get(ctx, k).Result()
		require.NoError(t, err)
		for _, secret := range []string{refresh, newRefresh, newAccess} {
			require.NotContains(t, k+v, secret, "a token is stored in clear in Redis")
		}
	}
	requireNotLogged(t, ps, refresh, newRefresh, newAccess, expired)
}
