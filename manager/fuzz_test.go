package manager_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/manager/jwtverify"
	"github.com/sessiond/sessiond/manager/upstream"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/memory"
)

// Fuzz target of the request → credentials → resolve path: the Cookie and
// Authorization headers of any request an app serves through Middleware.
// Seeds (f.Add and testdata/fuzz) run as normal tests; fuzz with
// go test ./manager -run '^$' -fuzz FuzzMiddlewareCredentials.

var fuzzSecret = []byte("fuzz-secret-0123456789abcdef-0123")

func FuzzMiddlewareCredentials(f *testing.F) {
	// The upstream answers a user for any bearer (the manager has verified
	// it) and refuses every refresh; it counts what it is asked.
	var userCalls, refreshCalls atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/refresh") {
			refreshCalls.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		userCalls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"alice"}`))
	}))
	f.Cleanup(up.Close)
	v, err := jwtverify.New(context.Background(), jwtverify.Config{HMACSecrets: [][]byte{fuzzSecret}})
	require.NoError(f, err)
	f.Cleanup(func() { _ = v.Close() })
	uc, err := upstream.New(upstream.Config{BaseURL: up.URL, Timeout: time.Second})
	require.NoError(f, err)
	st := &countingStore{Store: memory.New(memory.Options{})}
	f.Cleanup(func() { _ = st.Store.(*memory.Store).Close() })
	m, err := manager.New(st, manager.Config{JWT: v, Upstream: uc, Development: true})
	require.NoError(f, err)

	live, _, err := m.CreateSession(context.Background(), "alice", nil, store.Device{})
	require.NoError(f, err)
	access, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(fuzzSecret)
	require.NoError(f, err)
	malformed := strings.Repeat("A", store.TokenLen-1)
	seeds := []struct{ cookie, auth string }{
		{"session-token=" + live, ""},
		{"session-token=" + malformed, ""},
		{"session-token=" + live + "; session-token=" + malformed, ""},
		{"", "Bearer " + access},
		{"access-token=" + access, ""},
		{"access-token=" + access[:len(access)-3] + "; refresh-token=r1", ""},
		{"refresh-token=opaque", "bearer  "},
		{`session-token="quoted"; =; ;;; a=b=c`, "Basic dXNlcjpwYXNz"},
		{"session-token=" + strings.Repeat("x", 8192), "Bearer " + strings.Repeat("y", 9000)},
		{"", ""},
	}
	for _, s := range seeds {
		f.Add(s.cookie, s.auth)
	}
	reached := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	h := m.Middleware(reached)

	f.Fuzz(func(t *testing.T, cookie, auth string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		c := m.Credentials(r)
		// The credentials are what the whole parsed Cookie header holds:
		// for each name, the first non-empty value.
		want := map[string]string{}
		for _, ck := range r.Cookies() {
			if want[ck.Name] == "" {
				want[ck.Name] = ck.Value
			}
		}
		require.Equal(t, want[m.CookieName()], c.SessionToken)
		require.Equal(t, want[m.RefreshTokenCookieName()], c.RefreshToken)
		if scheme, tok, ok := strings.Cut(auth, " "); !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			require.Equal(t, want[m.AccessTokenCookieName()], c.AccessToken)
		}
		storeBefore, userBefore := st.calls(), userCalls.Load()

		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)

		// The memory store and this upstream never fail: the app's handler
		// always runs, with or without a session.
		require.Equal(t, http.StatusTeapot, w.Code, "Middleware did not reach the handler")

		_, sessErr := store.IDFromToken(c.SessionToken)
		_, jwtErr := v.Verify(c.AccessToken)
		if sessErr != nil && jwtErr != nil {
			require.Equal(t, storeBefore, st.calls(), "rejected credentials reached the store")
			require.Equal(t, userBefore, userCalls.Load(), "an unverified access token reached the upstream")
		}
		// No credential is echoed back in a cookie.
		for _, sc := range w.Result().Cookies() {
			for _, secret := range []string{c.SessionToken, c.AccessToken, c.RefreshToken} {
				if len(secret) >= 8 {
					require.NotEqual(t, secret, sc.Value, "cookie %s echoes a credential", sc.Name)
				}
			}
		}
	})
}
