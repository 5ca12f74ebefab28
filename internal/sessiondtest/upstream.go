package sessiondtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Upstream is a fake upstream API for the resolve chain's JWT step: it
// signs HS256 access tokens with a secret sessiond is given, and answers
// GET /api/v1/users/me with the user of a valid bearer token, after an
// adjustable delay (to keep a request in flight).
type Upstream struct {
	srv    *httptest.Server
	secret string
	delay  atomic.Int64 // time.Duration
	calls  atomic.Int64
}

// StartUpstream starts a fake upstream on loopback that the test's cleanup
// closes.
func StartUpstream(t testing.TB) *Upstream {
	t.Helper()
	var b [32]byte
	_, _ = rand.Read(b[:])
	u := &Upstream{secret: hex.EncodeToString(b[:])}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serveUser))
	t.Cleanup(u.srv.Close)
	return u
}

// Args are the sessiond flags that point it at this upstream.
func (u *Upstream) Args() []string { return []string{"--upstream-url", u.srv.URL} }

// Env are the environment variables that give sessiond the signing secret
// (secrets go by environment, never on the command line).
func (u *Upstream) Env() []string { return []string{"SESSIOND_JWT_HMAC_SECRETS=" + u.secret} }

// URL is the upstream's base URL.
func (u *Upstream) URL() string { return u.srv.URL }

// SetDelay makes every later user fetch wait d before answering.
func (u *Upstream) SetDelay(d time.Duration) { u.delay.Store(int64(d)) }

// Calls is how many user fetches the upstream has answered or started.
func (u *Upstream) Calls() int { return int(u.calls.Load()) }

// Token returns an HS256 access token for userID, valid for ttl.
func (u *Upstream) Token(t testing.TB, userID string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   userID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}).SignedString([]byte(u.secret))
	if err != nil {
		t.Fatalf("sessiondtest: sign access token: %v", err)
	}
	return tok
}

func (u *Upstream) serveUser(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || r.URL.Path != "/api/v1/users/me" {
		http.NotFound(w, r)
		return
	}
	u.calls.Add(1)
	if d := time.Duration(u.delay.Load()); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var claims jwt.RegisteredClaims
	if ok {
		_, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return []byte(u.secret), nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
		ok = err == nil
	}
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"id": claims.Subject, "name": "user " + claims.Subject})
}
