package integration_test

import (
	"context"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// A resolve in flight when SIGTERM arrives (its upstream user fetch takes
// a second) completes with 200 and a session written to Redis, /readyz
// says 503 while the instance drains, and the process exits 0. The new
// session is then readable from another instance: Redis was closed only
// after the last request.
func TestInFlightRequestSurvivesSIGTERM(t *testing.T) {
	const fetch = 1500 * time.Millisecond
	rs := redistest.StartServer(t)
	up := sessiondtest.StartUpstream(t)
	opts := sessiondtest.Options{
		APIKey:   sessiondtest.APIKey,
		RedisURL: rs.URL(),
		Args:     append(up.Args(), "--shutdown-delay", "600ms"),
		Env:      up.Env(),
	}
	p := sessiondtest.Start(t, opts)
	other := sessiondtest.Start(t, opts)
	up.SetDelay(fetch)

	access := up.Token(t, "carol", time.Minute)
	type result struct {
		res *client.Resolution
		err error
	}
	got := make(chan result, 1)
	go func() {
		res, err := p.Client().Resolve(context.Background(), client.ResolveRequest{AccessToken: access})
		got <- result{res, err}
	}()
	// The request is in flight once the upstream has been asked.
	deadline := time.Now().Add(10 * time.Second)
	for up.Calls() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	require.Equal(t, 1, up.Calls(), "the resolve never reached the upstream")
	sent := time.Now()
	require.NoError(t, p.Signal(syscall.SIGTERM))

	// Draining: readiness fails so balancers stop sending (within the
	// shutdown delay, while the listener is still open).
	var readyErr error
	for time.Since(sent) < 500*time.Millisecond {
		if readyErr = p.Client().Readyz(context.Background()); readyErr != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	require.True(t, client.IsCode(readyErr, client.CodeShuttingDown), "/readyz while draining = %v, want 503 shutting_down", readyErr)

	r := <-got
	require.NoError(t, r.err, "the in-flight request failed")
	require.Equal(t, "jwt", r.res.Source)
	require.Equal(t, "carol", r.res.Session.UserID)
	require.NotEmpty(t, r.res.SessionToken)
	require.GreaterOrEqual(t, time.Since(sent), fetch/2, "answered before the upstream could have: the request was not in flight")

	require.Equal(t, 0, p.Wait(10*time.Second), "exit code after SIGTERM")
	// New connections are refused once it is gone.
	_, err := http.Get(p.BaseURL() + "/healthz")
	require.Error(t, err)

	res, err := other.Client().Resolve(context.Background(), client.ResolveRequest{SessionToken: r.res.SessionToken})
	require.NoError(t, err)
	require.Equal(t, r.res.Session.ID, res.Session.ID)

	requireNotLogged(t, []*sessiondtest.Process{p, other}, access, r.res.SessionToken, sessiondtest.APIKey)
}
