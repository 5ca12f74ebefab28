package integration_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// A session created on one instance is seen by the others, and signing a
// user out everywhere on a third instance ends it on all of them: the
// instances share nothing but Redis.
func TestCreateResolveRevokeAcrossInstances(t *testing.T) {
	_, ps := startRedisFleet(t, 3)
	a, b, c := ps[0].Client(), ps[1].Client(), ps[2].Client()
	ctx := context.Background()

	laptop, err := a.CreateSession(ctx, client.CreateRequest{UserID: "alice", User: []byte(`{"name":"Alice"}`)})
	require.NoError(t, err)
	phone, err := a.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	require.NoError(t, err)
	other, err := c.CreateSession(ctx, client.CreateRequest{UserID: "bob"})
	require.NoError(t, err)

	res, err := b.Resolve(ctx, client.ResolveRequest{SessionToken: laptop.Token})
	require.NoError(t, err)
	require.Equal(t, "session", res.Source)
	require.Equal(t, "alice", res.Session.UserID)
	require.Equal(t, laptop.Session.ID, res.Session.ID)
	require.JSONEq(t, `{"name":"Alice"}`, string(res.Session.User))

	list, err := c.ListSessions(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, list, 2)

	n, err := c.RevokeUserSessions(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, 2, n)

	for name, cl := range map[string]*client.Client{"A": a, "B": b} {
		for _, tok := range []string{laptop.Token, phone.Token} {
			_, err := cl.Resolve(ctx, client.ResolveRequest{SessionToken: tok})
			require.True(t, client.IsCode(err, client.CodeInvalidToken), "Resolve on %s after revoke-all = %v, want invalid_token", name, err)
			var e *client.Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, http.StatusUnauthorized, e.Status)
		}
		list, err := cl.ListSessions(ctx, "alice")
		require.NoError(t, err)
		require.Empty(t, list, "alice's sessions on %s after revoke-all", name)
	}
	// Only alice was signed out.
	res, err = a.Resolve(ctx, client.ResolveRequest{SessionToken: other.Token})
	require.NoError(t, err)
	require.Equal(t, "bob", res.Session.UserID)

	requireNotLogged(t, ps, laptop.Token, phone.Token, other.Token, sessiondtest.APIKey)
}

// balancer is the test's load balancer: round-robin over the instances; a
// request that cannot reach an instance (refused, reset, EOF) marks it down
// and goes to the next one, as a real balancer retries a dead backend. An
// HTTP answer, whatever its status, is never retried.
type balancer struct {
	clients []*client.Client
	next    atomic.Uint64
	mu      sync.Mutex
	down    map[int]bool
}

func (lb *balancer) resolve(ctx context.Context, token string) (served int, err error) {
	for range 2 * len(lb.clients) {
		i := int(lb.next.Add(1) % uint64(len(lb.clients)))
		lb.mu.Lock()
		isDown := lb.down[i]
		lb.mu.Unlock()
		if isDown {
			continue
		}
		res, err := lb.clients[i].Resolve(ctx, client.ResolveRequest{SessionToken: token})
		var apiErr *client.Error
		switch {
		case err == nil:
			if res.Session == nil {
				return i, errors.New("resolve answered without a session")
			}
			return i, nil
		case errors.As(err, &apiErr):
			return i, fmt.Errorf("instance %d: %w", i, err)
		default:
			lb.mu.Lock()
			lb.down[i] = true
			lb.mu.Unlock()
		}
	}
	return -1, errors.New("no instance reachable")
}

// Killing one instance (SIGKILL, mid-load) costs the callers nothing: the
// balancer moves its requests to the other two, which keep serving every
// request without a single failure.
func TestKillOneInstanceMidLoad(t *testing.T) {
	_, ps := startRedisFleet(t, 3)
	ctx := context.Background()

	const sessions = 20
	tokens := make([]string, sessions)
	for i := range tokens {
		created, err := ps[i%3].Client().CreateSession(ctx, client.CreateRequest{UserID: fmt.Sprintf("user%d", i%5)})
		require.NoError(t, err)
		tokens[i] = created.Token
	}

	lb := &balancer{down: map[int]bool{}}
	for _, p := range ps {
		lb.clients = append(lb.clients, p.Client())
	}
	const (
		workers   = 4
		perWorker = 150
		victim    = 1
	)
	var (
		done       atomic.Int64
		killed     atomic.Bool
		afterKill  [3]atomic.Int64 // requests served by each instance once the kill was done
		failures   atomic.Int64
		firstError atomic.Value
		wg         sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				served, err := lb.resolve(ctx, tokens[(w*perWorker+i)%sessions])
				if err != nil {
					failures.Add(1)
					firstError.CompareAndSwap(nil, err.Error())
					continue
				}
				if killed.Load() {
					afterKill[served].Add(1)
				}
				done.Add(1)
			}
		}()
	}
	// Kill once a third of the load has been served, so requests are in
	// flight to the victim when it dies.
	deadline := time.Now().Add(30 * time.Second)
	for done.Load() < workers*perWorker/3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	ps[victim].Kill()
	killed.Store(true)
	atKill := done.Load()
	wg.Wait()

	require.Less(t, atKill, int64(workers*perWorker), "the load had finished before the kill: the test proves nothing")

	require.Zero(t, failures.Load(), "failed requests: first: %v", firstError.Load())
	require.EqualValues(t, workers*perWorker, done.Load())
	lb.mu.Lock()
	require.Equal(t, map[int]bool{victim: true}, lb.down, "only the killed instance may be unreachable")
	lb.mu.Unlock()
	require.Equal(t, -1, ps[victim].Wait(time.Second), "the victim died of SIGKILL")
	for _, i := range []int{0, 2} {
		require.Positive(t, afterKill[i].Load(), "instance %d served nothing after the kill", i)
	}
	requireNotLogged(t, []*sessiondtest.Process{ps[0], ps[2]}, append(tokens, sessiondtest.APIKey)...)
}
