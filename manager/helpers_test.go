package manager_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/manager/jwtverify"
	"github.com/sessiond/sessiond/manager/upstream"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/memory"
	redisstore "github.com/sessiond/sessiond/store/redis"
	"github.com/sessiond/sessiond/store/storetest"
)

// newStoreFunc makes a fresh, empty store on the test's backend that reads
// the given clock.
type newStoreFunc func(t testing.TB, now func() time.Time) store.Store

// eachBackend runs fn once on the memory store and once on a real Redis
// (one redis-server for the whole test; every store gets its own key
// prefix).
func eachBackend(t *testing.T, fn func(t *testing.T, newStore newStoreFunc)) {
	t.Helper()
	t.Run("memory", func(t *testing.T) {
		fn(t, func(t testing.TB, now func() time.Time) store.Store {
			s := memory.New(memory.Options{Now: now, JanitorInterval: -1})
			t.Cleanup(func() { _ = s.Close() })
			return s
		})
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Standalone(t)
		client := srv.Client(t)
		fn(t, func(t testing.TB, now func() time.Time) store.Store {
			s, err := redisstore.New(client, redisstore.Options{KeyPrefix: redistest.Prefix(t), Now: now})
			require.NoError(t, err)
			return s
		})
	})
}

// countingStore counts the calls that reach the store and can be switched
// to fail every call with store.ErrUnavailable, as a down backend does.
type countingStore struct {
	store.Store
	gets, creates, touches, updates, deletes, lists, deleteUsers, counts atomic.Int64
	down                                                                 atomic.Bool
}

func (c *countingStore) fail() error {
	if c.down.Load() {
		return store.ErrUnavailable
	}
	return nil
}

func (c *countingStore) Create(ctx context.Context, s *store.Session, o store.CreateOptions) ([]string, error) {
	c.creates.Add(1)
	if err := c.fail(); err != nil {
		return nil, err
	}
	return c.Store.Create(ctx, s, o)
}

func (c *countingStore) Get(ctx context.Context, id string) (*store.Session, error) {
	c.gets.Add(1)
	if err := c.fail(); err != nil {
		return nil, err
	}
	return c.Store.Get(ctx, id)
}

func (c *countingStore) Touch(ctx context.Context, id string, seen, exp time.Time) (*store.Session, error) {
	c.touches.Add(1)
	if err := c.fail(); err != nil {
		return nil, err
	}
	return c.Store.Touch(ctx, id, seen, exp)
}

func (c *countingStore) UpdateUser(ctx context.Context, u string, user json.RawMessage) (int, error) {
	c.updates.Add(1)
	if err := c.fail(); err != nil {
		return 0, err
	}
	return c.Store.UpdateUser(ctx, u, user)
}

func (c *countingStore) Delete(ctx context.Context, id string) error {
	c.deletes.Add(1)
	if err := c.fail(); err != nil {
		return err
	}
	return c.Store.Delete(ctx, id)
}

func (c *countingStore) List(ctx context.Context, u string) ([]*store.Session, error) {
	c.lists.Add(1)
	if err := c.fail(); err != nil {
		return nil, err
	}
	return c.Store.List(ctx, u)
}

func (c *countingStore) DeleteUser(ctx context.Context, u string) (int, error) {
	c.deleteUsers.Add(1)
	if err := c.fail(); err != nil {
		return 0, err
	}
	return c.Store.DeleteUser(ctx, u)
}

func (c *countingStore) Count(ctx context.Context, u string) (int, error) {
	c.counts.Add(1)
	if err := c.fail(); err != nil {
		return 0, err
	}
	return c.Store.Count(ctx, u)
}

// writes is how many calls could have changed the store.
func (c *countingStore) writes() int64 {
	return c.creates.Load() + c.touches.Load() + c.updates.Load() + c.deletes.Load() + c.deleteUsers.Load()
}

// calls is how many calls reached the store at all.
func (c *countingStore) calls() int64 {
	return c.writes() + c.gets.Load() + c.lists.Load() + c.counts.Load()
}

// syncBuffer is a log sink safe for the concurrent writers of a test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// eventLog records hook calls.
type eventLog struct {
	mu     sync.Mutex
	events []string // "kind:reason"
}

func (l *eventLog) add(kind string) func(context.Context, manager.Event) {
	return func(_ context.Context, e manager.Event) {
		l.mu.Lock()
		defer l.mu.Unlock()
		name := kind
		if e.Reason != "" {
			name += ":" + e.Reason
		}
		l.events = append(l.events, name)
	}
}

func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func (l *eventLog) hooks() manager.Hooks {
	return manager.Hooks{
		SignIn:         l.add("signin"),
		SignOut:        l.add("signout"),
		SessionCreated: l.add("created"),
		SessionRevoked: l.add("revoked"),
		Refreshed:      l.add("refreshed"),
		Invalidated:    l.add("invalidated"),
	}
}

// env is one manager under test with everything around it.
type env struct {
	clock  *storetest.Clock
	store  *countingStore
	m      *manager.Manager
	idp    *idp // nil unless the config asked for one
	logs   *syncBuffer
	events *eventLog
}

type envOptions struct {
	cfg    manager.Config
	idpAlg string // "" for no JWT steps; "HS256", "RS256", "ES256"
}

// start is a fixed, recent instant: real Redis keeps TTLs on its own clock,
// so the fake clock starts near real time.
func start() time.Time { return time.Now().Truncate(time.Second) }

func newEnv(t testing.TB, newStore newStoreFunc, o envOptions) *env {
	t.Helper()
	e := &env{clock: storetest.NewClock(start()), logs: &syncBuffer{}, events: &eventLog{}}
	e.store = &countingStore{Store: newStore(t, e.clock.Now)}
	cfg := o.cfg
	cfg.Now = e.clock.Now
	cfg.Logger = slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Hooks = e.events.hooks()
	if o.idpAlg != "" {
		e.idp = newIdP(t, o.idpAlg, e.clock)
		cfg.JWT = e.idp.verifier(t, jwtverify.Config{})
		cfg.Upstream = e.idp.client(t)
	}
	m, err := manager.New(e.store, cfg)
	require.NoError(t, err)
	e.m = m
	return e
}

// count returns the user's live sessions straight from the store.
func (e *env) count(t testing.TB, userID string) int {
	t.Helper()
	n, err := e.store.Store.Count(context.Background(), userID)
	require.NoError(t, err)
	return n
}

// Keys are made once per test binary: RSA generation is slow under -race.
var testKeys = sync.OnceValues(func() (*rsa.PrivateKey, *ecdsa.PrivateKey) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return rk, ek
})

var hmacSecret = []byte("0123456789abcdef0123456789abcdef-test-secret")

const (
	testIssuer   = "https://idp.test"
	testAudience = "sessiond-test"
)

// idp is an upstream API for tests: it issues real JWTs, answers the
// user-info endpoint for valid ones and refreshes with rotating,
// single-use refresh tokens.
type idp struct {
	srv    *httptest.Server
	alg    string
	method jwt.SigningMethod
	key    any // signing key
	pubPEM []byte
	clock  *storetest.Clock

	mu            sync.Mutex
	refresh       map[string]string // live refresh token -> user ID
	idOverride    map[string]string // user ID -> ID the user-info endpoint claims
	refreshDelay  time.Duration
	down          atomic.Bool
	refreshCalls  atomic.Int64
	userInfoCalls atomic.Int64
}

func newIdP(t testing.TB, alg string, clock *storetest.Clock) *idp {
	t.Helper()
	p := &idp{alg: alg, clock: clock, refresh: map[string]string{}, idOverride: map[string]string{}}
	rk, ek := testKeys()
	switch alg {
	case "HS256":
		p.method, p.key = jwt.SigningMethodHS256, hmacSecret
	case "RS256":
		p.method, p.key = jwt.SigningMethodRS256, rk
		p.pubPEM = pemOf(t, &rk.PublicKey)
	case "ES256":
		p.method, p.key = jwt.SigningMethodES256, ek
		p.pubPEM = pemOf(t, &ek.PublicKey)
	default:
		t.Fatalf("newIdP(%q): unknown algorithm", alg)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/users/me", p.userInfo)
	mux.HandleFunc("POST /api/v1/auth/refresh", p.refreshHandler)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func pemOf(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// verifier returns a jwtverify.Verifier for the idp's tokens; cfg may add
// settings.
func (p *idp) verifier(t testing.TB, cfg jwtverify.Config) *jwtverify.Verifier {
	t.Helper()
	if p.alg == "HS256" {
		cfg.HMACSecrets = [][]byte{hmacSecret}
	} else {
		cfg.PublicKeysPEM = [][]byte{p.pubPEM}
	}
	cfg.Issuer, cfg.Audience, cfg.Now = testIssuer, testAudience, p.clock.Now
	v, err := jwtverify.New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func (p *idp) client(t testing.TB) *upstream.Client {
	t.Helper()
	c, err := upstream.New(upstream.Config{BaseURL: p.srv.URL, Timeout: 5 * time.Second})
	require.NoError(t, err)
	return c
}

// claims returns the standard claims of an access token for userID that
// expires ttl from the idp's clock.
func (p *idp) claims(userID string, ttl time.Duration) jwt.MapClaims {
	now := p.clock.Now()
	return jwt.MapClaims{
		"sub": userID, "iss": testIssuer, "aud": testAudience,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
	}
}

func (p *idp) sign(t testing.TB, c jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(p.method, c).SignedString(p.key)
	require.NoError(t, err)
	return tok
}

// accessToken issues a valid access token for userID.
func (p *idp) accessToken(t testing.TB, userID string) string {
	return p.sign(t, p.claims(userID, 15*time.Minute))
}

// expiredToken issues a correctly signed access token that expired an
// hour ago.
func (p *idp) expiredToken(t testing.TB, userID string) string {
	c := p.claims(userID, -time.Hour)
	c["iat"] = p.clock.Now().Add(-2 * time.Hour).Unix()
	return p.sign(t, c)
}

// refreshToken issues a live refresh token for userID.
func (p *idp) refreshToken(userID string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := "rt-" + base64.RawURLEncoding.EncodeToString(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refresh[tok] = userID
	return tok
}

func (p *idp) parse(tok string) (string, bool) {
	t, err := jwt.Parse(tok, func(*jwt.Token) (any, error) {
		switch k := p.key.(type) {
		case *rsa.PrivateKey:
			return &k.PublicKey, nil
		case *ecdsa.PrivateKey:
			return &k.PublicKey, nil
		default:
			return k, nil
		}
	}, jwt.WithValidMethods([]string{p.alg}), jwt.WithTimeFunc(p.clock.Now), jwt.WithExpirationRequired())
	if err != nil {
		return "", false
	}
	sub, err := t.Claims.GetSubject()
	return sub, err == nil && sub != ""
}

func (p *idp) userInfo(w http.ResponseWriter, r *http.Request) {
	p.userInfoCalls.Add(1)
	if p.down.Load() {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	sub, ok := p.parse(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	if !ok {
		http.Error(w, `{"error":"invalid_token"}`, http.StatusUnauthorized)
		return
	}
	p.mu.Lock()
	id, override := p.idOverride[sub]
	p.mu.Unlock()
	if !override {
		id = sub
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"id": id, "name": "User " + sub, "email": sub + "@example.com"})
}

func (p *idp) refreshHandler(w http.ResponseWriter, r *http.Request) {
	p.refreshCalls.Add(1)
	if p.down.Load() {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	p.mu.Lock()
	delay := p.refreshDelay
	p.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	old := r.PostFormValue("refresh_token")
	p.mu.Lock()
	userID, ok := p.refresh[old]
	delete(p.refresh, old) // single use: rotation
	p.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.PostFormValue("grant_type") != "refresh_token" || !ok {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
		return
	}
	c := p.claims(userID, 15*time.Minute)
	tok, err := jwt.NewWithClaims(p.method, c).SignedString(p.key)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok, "refresh_token": p.refreshToken(userID),
		"token_type": "Bearer", "expires_in": 900,
	})
}

// deadRedisStore is a Redis store whose client points at a closed port.
func deadRedisStore(t testing.TB, now func() time.Time) store.Store {
	t.Helper()
	l := httptest.NewUnstartedServer(nil) // reserves a port, then frees it
	addr := l.Listener.Addr().String()
	l.Close()
	client := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = client.Close() })
	s, err := redisstore.New(client, redisstore.Options{Now: now})
	require.NoError(t, err)
	return s
}
