package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/manager/upstream"
)

// memCoordinator is an in-process upstream.Coordinator standing in for
// Redis: what several sessiond processes would share.
type memCoordinator struct {
	mu     sync.Mutex
	vals   map[string][]byte
	until  map[string]time.Time
	locks  map[string]time.Time
	broken atomic.Bool // every call fails, as an unreachable Redis
}

func newMemCoordinator() *memCoordinator {
	return &memCoordinator{vals: map[string][]byte{}, until: map[string]time.Time{}, locks: map[string]time.Time{}}
}

var errBroken = errors.New("coordinator unreachable")

func (m *memCoordinator) TryLock(ctx context.Context, key string, ttl time.Duration) (func(context.Context), bool, error) {
	if m.broken.Load() {
		return nil, false, errBroken
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if until, ok := m.locks[key]; ok && time.Now().Before(until) {
		return nil, false, nil
	}
	mine := time.Now().Add(ttl)
	m.locks[key] = mine
	return func(context.Context) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.locks[key] == mine {
			delete(m.locks, key)
		}
	}, true, nil
}

func (m *memCoordinator) Load(ctx context.Context, key string) ([]byte, error) {
	if m.broken.Load() {
		return nil, errBroken
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !time.Now().Before(m.until[key]) {
		return nil, nil
	}
	return m.vals[key], nil
}

func (m *memCoordinator) Save(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if m.broken.Load() {
		return errBroken
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.vals[key] = append([]byte(nil), value...)
	m.until[key] = time.Now().Add(ttl)
	return nil
}

// everything returns every key and value stored, for secrecy checks.
func (m *memCoordinator) everything() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	for k, v := range m.vals {
		b.WriteString(k)
		b.Write(v)
	}
	for k := range m.locks {
		b.WriteString(k)
	}
	return b.String()
}

// rotatingUpstream answers a refresh of "old-refresh" once, with new
// tokens and a rotated refresh token, after delay; any later use of the
// old token is refused, as a rotating upstream does.
func rotatingUpstream(t *testing.T, delay time.Duration) (url string, calls *atomic.Int64) {
	t.Helper()
	calls = new(atomic.Int64)
	var used atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		time.Sleep(delay)
		if r.FormValue("refresh_token") != "old-refresh" || used.Swap(true) {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"new-access","refresh_token":"new-refresh","expires_in":60}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

// Three clients (three processes) sharing one Coordinator, 30 concurrent
// refreshes of one token: one upstream call, 30 identical results, and
// the shared storage holds neither the old nor the new tokens in clear.
func TestCoordinatedRefreshAcrossClients(t *testing.T) {
	url, calls := rotatingUpstream(t, 50*time.Millisecond)
	coord := newMemCoordinator()
	var clients []*upstream.Client
	for range 3 {
		c, err := upstream.New(upstream.Config{BaseURL: url, Coordinator: coord})
		require.NoError(t, err)
		clients = append(clients, c)
	}
	const n = 30
	toks := make([]*upstream.Tokens, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = clients[i%3].Refresh(context.Background(), "old-refresh")
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i], "Refresh #%d", i)
		require.Equal(t, "new-access", toks[i].AccessToken)
		require.Equal(t, "new-refresh", toks[i].RefreshToken)
	}
	require.EqualValues(t, 1, calls.Load(), "upstream refresh calls")

	// A late caller on a client that saw nothing still gets the result.
	late, err := upstream.New(upstream.Config{BaseURL: url, Coordinator: coord})
	require.NoError(t, err)
	got, err := late.Refresh(context.Background(), "old-refresh")
	require.NoError(t, err)
	require.Equal(t, "new-access", got.AccessToken)
	require.EqualValues(t, 1, calls.Load())

	stored := coord.everything()
	require.NotEmpty(t, stored)
	for _, secret := range []string{"old-refresh", "new-access", "new-refresh"} {
		require.NotContains(t, stored, secret, "a token is stored in clear")
	}
}

// A refusal is shared too: the other processes do not spend the token
// again, and all callers learn it is refused.
func TestCoordinatedRefreshSharesRefusal(t *testing.T) {
	url, calls := rotatingUpstream(t, 20*time.Millisecond)
	coord := newMemCoordinator()
	a, err := upstream.New(upstream.Config{BaseURL: url, Coordinator: coord})
	require.NoError(t, err)
	b, err := upstream.New(upstream.Config{BaseURL: url, Coordinator: coord})
	require.NoError(t, err)
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := a
			if i%2 == 1 {
				c = b
			}
			_, errs[i] = c.Refresh(context.Background(), "stolen-refresh")
		}()
	}
	wg.Wait()
	for i, err := range errs {
		require.ErrorIs(t, err, upstream.ErrUnauthorized, "Refresh #%d", i)
	}
	require.EqualValues(t, 1, calls.Load())
}

// An unreachable Coordinator means "try again": no upstream call is made,
// so a rotating refresh token is not spent without its result being
// shared.
func TestCoordinatedRefreshCoordinatorDown(t *testing.T) {
	url, calls := rotatingUpstream(t, 0)
	coord := newMemCoordinator()
	coord.broken.Store(true)
	c, err := upstream.New(upstream.Config{BaseURL: url, Coordinator: coord})
	require.NoError(t, err)
	_, err = c.Refresh(context.Background(), "old-refresh")
	require.ErrorIs(t, err, upstream.ErrUnavailable)
	require.NotContains(t, err.Error(), "old-refresh")
	require.Zero(t, calls.Load())

	coord.broken.Store(false)
	got, err := c.Refresh(context.Background(), "old-refresh")
	require.NoError(t, err)
	require.Equal(t, "new-access", got.AccessToken)
	require.EqualValues(t, 1, calls.Load())
}

// A result that does not decrypt (tampered with, or another deployment's
// garbage under the same name) is never handed out as tokens.
func TestCoordinatedRefreshTamperedResult(t *testing.T) {
	url, calls := rotatingUpstream(t, 0)
	coord := newMemCoordinator()
	c, err := upstream.New(upstream.Config{BaseURL: url, Coordinator: coord})
	require.NoError(t, err)
	_, err = c.Refresh(context.Background(), "old-refresh")
	require.NoError(t, err)
	coord.mu.Lock()
	for k, v := range coord.vals {
		v[len(v)-1] ^= 1
		coord.vals[k] = v
	}
	coord.mu.Unlock()
	other, err := upstream.New(upstream.Config{BaseURL: url, Coordinator: coord})
	require.NoError(t, err)
	_, err = other.Refresh(context.Background(), "old-refresh")
	require.ErrorIs(t, err, upstream.ErrUnavailable)
	require.EqualValues(t, 1, calls.Load())
}
