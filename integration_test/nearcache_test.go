package integration_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/store"
)

// With --redis-near-cache-ttl, three instances serve hot sessions from
// memory, and sign-out everywhere on one of them ends the session on all
// of them through Redis pub/sub, long before the TTL. The TTL here is a
// minute, so a resolve that fails within the test's bound can only have
// been told by a message. The test reports the propagation delay: from
// revoke-all's answer to the first failed resolve on each other instance.
func TestNearCacheRevokePropagation(t *testing.T) {
	rs, ps := startRedisFleet(t, 3, "--redis-near-cache-ttl=1m")
	a := ps[0].Client()
	others := []*client.Client{ps[1].Client(), ps[2].Client()}
	ctx := context.Background()
	for _, p := range ps {
		require.True(t, p.Logged(`"near cache on"`), "sessiond pid %d did not turn the near cache on", p.PID())
		require.True(t, p.Logged(`"subscribed":true`), "sessiond pid %d started before its invalidation channel was up", p.PID())
	}

	warm := func(token string) {
		t.Helper()
		for _, c := range append([]*client.Client{a}, others...) {
			for range 2 {
				_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: token})
				require.NoError(t, err)
			}
		}
	}

	// The cache is really on: a session deleted behind sessiond's back
	// (no message) is still served from memory.
	hidden, err := a.CreateSession(ctx, client.CreateRequest{UserID: "hidden"})
	require.NoError(t, err)
	warm(hidden.Token)
	id := hidden.Session.ID
	rc := rs.Client(t)
	require.NoError(t, rc.Del(ctx, "sessiond:session:{"+id[:store.TagLen]+"}"+id[store.TagLen:]).Err())
	for _, c := range others {
		_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: hidden.Token})
		require.NoError(t, err, "a cached session should be served from memory")
	}

	const rounds = 20
	const bound = 2 * time.Second
	var (
		mu     sync.Mutex
		delays []time.Duration
	)
	var revoked []string
	for i := range rounds {
		user := fmt.Sprint("user-", i)
		var tokens []string
		for range 2 {
			cr, err := a.CreateSession(ctx, client.CreateRequest{UserID: user})
			require.NoError(t, err)
			tokens = append(tokens, cr.Token)
			warm(cr.Token)
		}
		n, err := a.RevokeUserSessions(ctx, user)
		require.NoError(t, err)
		require.Equal(t, 2, n)
		t0 := time.Now()
		var wg sync.WaitGroup
		for _, c := range others {
			for _, tok := range tokens {
				wg.Go(func() {
					for time.Since(t0) < bound {
						_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: tok})
						if client.IsCode(err, client.CodeInvalidToken) {
							mu.Lock()
							delays = append(delays, time.Since(t0))
							mu.Unlock()
							return
						}
						if err != nil {
							t.Errorf("resolve after revoke-all: %v", err)
							return
						}
					}
					t.Errorf("a revoked session still resolved %v after revoke-all", bound)
				})
			}
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		revoked = append(revoked, tokens...)
	}
	// No instance resolves any of them again.
	for _, c := range append([]*client.Client{a}, others...) {
		for _, tok := range revoked {
			_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: tok})
			require.True(t, client.IsCode(err, client.CodeInvalidToken), "Resolve after revoke-all = %v, want invalid_token", err)
		}
	}
	slices.Sort(delays)
	require.Len(t, delays, rounds*4)
	t.Logf("near-cache revoke propagation over %d resolves: p50 %v, p99 %v, max %v",
		len(delays), delays[len(delays)/2], delays[len(delays)*99/100], delays[len(delays)-1])

	requireNotLogged(t, ps, append(revoked, hidden.Token, sessiondtest.APIKey)...)
}
