package manager_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/manager/jwtverify"
	"github.com/sessiond/sessiond/store"
	redisstore "github.com/sessiond/sessiond/store/redis"
	"github.com/sessiond/sessiond/store/storetest"
)

// benchManager is a quiet Manager on st with a real clock.
func benchManager(b *testing.B, st store.Store, cfg manager.Config) *manager.Manager {
	b.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := manager.New(st, cfg)
	require.NoError(b, err)
	return m
}

// serveGetServerSession runs one request through Middleware to a handler
// that reads the session, the whole per-request cost for the app.
func serveGetServerSession(b *testing.B, m *manager.Manager, req *http.Request) {
	b.Helper()
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := m.GetServerSession(r); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
		}
	}))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

func cookieRequest(b *testing.B, m *manager.Manager) *http.Request {
	b.Helper()
	token, _, err := m.CreateSession(context.Background(), "bench-user", []byte(`{"id":"bench-user","name":"Bench"}`), store.Device{UserAgent: "bench"})
	require.NoError(b, err)
	req := httptest.NewRequest("GET", "/", nil)
	req.AddCookie(&http.Cookie{Name: m.CookieName(), Value: token})
	return req
}

// BenchmarkGetServerSession measures one request through Middleware to a
// handler that calls GetServerSession: resolved by its session cookie (a
// store hit, no extension due) on each backend, and resolved by a JWT
// (see the sub-benchmarks). The Redis floor is one raw GET on the same
// server; verify-only splits the JWT path's cost.
func BenchmarkGetServerSession(b *testing.B) {
	b.Run("cookie/memory", func(b *testing.B) {
		m := benchManager(b, newMemory(b, nil), manager.Config{})
		serveGetServerSession(b, m, cookieRequest(b, m))
	})

	// As a browser sends it: a full User-Agent and the site's other
	// cookies (analytics, preferences) beside the session cookie.
	b.Run("cookie/memory/browser", func(b *testing.B) {
		m := benchManager(b, newMemory(b, nil), manager.Config{})
		req := cookieRequest(b, m)
		req.Header.Set("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
		req.Header.Set("Cookie", "_ga=GA1.1.123456789.1700000000; _gid=GA1.1.987654321.1700000000; theme=dark; lang=en-US; consent=yes; "+
			req.Header.Get("Cookie")+"; _fbp=fb.1.1700000000.123456; csrftoken=abcdefabcdefabcdefabcdef; prefs=compact; tz=UTC")
		serveGetServerSession(b, m, req)
	})

	b.Run("cookie/redis", func(b *testing.B) {
		client := redistest.Standalone(b).Client(b)
		st, err := redisstore.New(client, redisstore.Options{KeyPrefix: redistest.Prefix(b)})
		require.NoError(b, err)
		m := benchManager(b, st, manager.Config{})
		serveGetServerSession(b, m, cookieRequest(b, m))
	})

	b.Run("redis-floor-GET", func(b *testing.B) {
		client := redistest.Standalone(b).Client(b)
		key := redistest.Prefix(b) + "k"
		require.NoError(b, client.Set(context.Background(), key, `{"id":"x"}`, time.Minute).Err())
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := client.Get(context.Background(), key).Err(); err != nil {
				b.Fatal(err)
			}
		}
	})

	for _, alg := range []string{"HS256", "RS256"} {
		// A new access token each request: verify, fetch the user from
		// the upstream (loopback HTTP), create a session. Signing the
		// token is the test's cost and is not timed.
		b.Run("jwt-new-session/"+alg, func(b *testing.B) {
			clock := storetest.NewClock(time.Now())
			p := newIdP(b, alg, clock)
			m := benchManager(b, newMemory(b, nil), manager.Config{JWT: p.verifier(b, jwtverify.Config{}), Upstream: p.client(b)})
			h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, err := m.GetServerSession(r); err != nil {
					http.Error(w, err.Error(), http.StatusUnauthorized)
				}
			}))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				c := p.claims("bench-user", 15*time.Minute)
				c["jti"] = i // a distinct token per request
				req := httptest.NewRequest("GET", "/", nil)
				req.Header.Set("Authorization", "Bearer "+p.sign(b, c))
				b.StartTimer()
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
		// The same access token again (an API client without cookies):
		// verify, then the session it made is read from the store.
		b.Run("jwt-remembered/"+alg, func(b *testing.B) {
			p := newIdP(b, alg, storetest.NewClock(time.Now()))
			m := benchManager(b, newMemory(b, nil), manager.Config{JWT: p.verifier(b, jwtverify.Config{}), Upstream: p.client(b)})
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Authorization", "Bearer "+p.accessToken(b, "bench-user"))
			serveGetServerSession(b, m, req)
		})
		b.Run("verify-only/"+alg, func(b *testing.B) {
			p := newIdP(b, alg, storetest.NewClock(time.Now()))
			v := p.verifier(b, jwtverify.Config{})
			tok := p.accessToken(b, "bench-user")
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := v.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
