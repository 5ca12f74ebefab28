package integration_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// Fault scenario 1: the standalone Redis restarts under sessiond, once
// crashed (SIGKILL) and once shut down cleanly (SIGTERM runs the same
// shutdown as the SHUTDOWN command: final AOF fsync).

// restartRequestTimeout is sessiond's --request-timeout in these tests:
// every request during the outage must answer within it plus a margin.
const (
	restartRequestTimeout = 2 * time.Second
	restartMargin         = time.Second
)

func TestFaultRedisKill9(t *testing.T) {
	testRedisRestart(t, func(rs *redistest.Server) error { return rs.Kill() })
}

func TestFaultRedisCleanShutdown(t *testing.T) {
	testRedisRestart(t, func(rs *redistest.Server) error { return rs.Stop() })
}

// testRedisRestart creates 1,000 sessions and revokes 100 of them, lets
// more than a second pass (appendfsync everysec), writes a last batch,
// stops Redis with stop, checks the outage answers, restarts Redis and
// checks that sessiond recovers on its own with nothing lost and nothing
// revoked back.
func testRedisRestart(t *testing.T, stop func(*redistest.Server) error) {
	rs := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "everysec")
	p := sessiondtest.Start(t, sessiondtest.Options{
		APIKey:   sessiondtest.APIKey,
		RedisURL: rs.URL(),
		Args:     []string{"--request-timeout", restartRequestTimeout.String()},
	})
	c := p.Client()
	ctx := context.Background()

	const total, revoked, users = 1000, 100, 50
	created := createSessions(t, c, total, users)
	// Revoke 100: half by sign-out (the token), half by ID (admin revoke).
	isRevoked := make([]bool, total)
	for i := 0; i < revoked; i++ {
		j := i * (total / revoked)
		isRevoked[j] = true
		if i%2 == 0 {
			out, err := c.SignOut(ctx, created[j].Token)
			require.NoError(t, err)
			require.True(t, out.Revoked)
		} else {
			require.NoError(t, c.RevokeSession(ctx, created[j].Session.UserID, created[j].Session.ID))
		}
	}
	// Everything above was acknowledged more than a second before the
	// fault: appendfsync everysec has flushed it.
	time.Sleep(1100 * time.Millisecond)
	// The last batch is acknowledged just before the fault; its fate is
	// measured, not asserted (a crash may lose up to a second of writes).
	late := createSessions(t, c, 50, users)

	require.NoError(t, stop(rs))
	down := time.Now()

	// The outage: every resolve is 503 store_unavailable, within the
	// request deadline, and never 401 (a 401 would sign the user out).
	const probes = 40
	results := make([]callResult, probes)
	parallel(probes, 4, func(i int) {
		start := time.Now()
		_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: created[(i*7)%total].Token})
		results[i] = classifyCall(time.Since(start), http.StatusOK, err)
	})
	var slowest time.Duration
	for i, r := range results {
		require.Equal(t, http.StatusServiceUnavailable, r.status, "resolve #%d during the outage: %v", i, r.err)
		require.Equal(t, client.CodeStoreUnavailable, r.code)
		require.Less(t, r.took, restartRequestTimeout+restartMargin, "resolve #%d took %v", i, r.took)
		slowest = max(slowest, r.took)
	}
	// A sign-in fails the same way, and the raw answer carries no cookie
	// at all (no clearing Set-Cookie instruction for the app to forward).
	_, err := c.CreateSession(ctx, client.CreateRequest{UserID: "newcomer"})
	require.True(t, client.IsCode(err, client.CodeStoreUnavailable), "create during the outage = %v", err)
	body := rawResolve(t, p, created[1].Token)
	require.Equal(t, http.StatusServiceUnavailable, body.status)
	require.NotContains(t, body.text, "cookies")
	require.Empty(t, body.setCookie)

	// Redis comes back on the same port with its AOF; sessiond is not
	// restarted and must answer again by itself.
	outage := time.Since(down)
	require.NoError(t, rs.Start())
	recovery := waitFor(t, 15*time.Second, 20*time.Millisecond, "sessiond answering after Redis restart", func() bool {
		_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: created[2].Token})
		return err == nil
	})

	// Nothing acknowledged >1 s before the fault is lost; nothing revoked
	// comes back.
	lost, resurrected := 0, 0
	check := make([]error, total)
	parallel(total, 8, func(i int) {
		_, check[i] = c.Resolve(ctx, client.ResolveRequest{SessionToken: created[i].Token})
	})
	for i, err := range check {
		switch {
		case isRevoked[i]:
			if err == nil {
				resurrected++
			} else {
				require.True(t, client.IsCode(err, client.CodeInvalidToken), "revoked #%d: %v", i, err)
			}
		case err != nil:
			require.True(t, client.IsCode(err, client.CodeInvalidToken), "session #%d: %v", i, err)
			lost++
		}
	}
	lateLost := 0
	for _, s := range late {
		if _, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: s.Token}); err != nil {
			require.True(t, client.IsCode(err, client.CodeInvalidToken), "late session: %v", err)
			lateLost++
		}
	}
	t.Logf("REPORT restart: outage %v, slowest 503 %v (deadline %v), recovery after restart %v, lost %d/%d, revoked back %d/%d, last-second writes lost %d/%d",
		outage.Round(time.Millisecond), slowest.Round(time.Millisecond), restartRequestTimeout,
		recovery.Round(time.Millisecond), lost, total-revoked, resurrected, revoked, lateLost, len(late))
	require.Zero(t, lost, "sessions acknowledged more than 1 s before the fault were lost")
	require.Zero(t, resurrected, "revoked sessions came back")
	requireNotLogged(t, []*sessiondtest.Process{p}, created[0].Token, created[1].Token, sessiondtest.APIKey)
}

type rawAnswer struct {
	status    int
	text      string
	setCookie []string
}

// rawResolve posts a resolve by hand, to see the very bytes an app gets.
func rawResolve(t *testing.T, p *sessiondtest.Process, token string) rawAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, p.BaseURL()+"/v1/sessions/resolve",
		strings.NewReader(fmt.Sprintf(`{"sessionToken":%q}`, token)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+sessiondtest.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return rawAnswer{status: resp.StatusCode, text: string(b), setCookie: resp.Header.Values("Set-Cookie")}
}

// Fault scenario 1, the LOADING phase: after a crash, a Redis with a big
// dataset answers LOADING for a while after it accepts connections. All
// that time sessiond answers 503 (never 401: the sessions exist, Redis
// just cannot read them yet), and it serves again by itself once loading
// ends.
func TestFaultRedisRestartWhileLoading(t *testing.T) {
	rs := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "everysec", "--enable-debug-command", "yes")
	p := sessiondtest.Start(t, sessiondtest.Options{
		APIKey:   sessiondtest.APIKey,
		RedisURL: rs.URL(),
		Args:     []string{"--request-timeout", restartRequestTimeout.String(), "--failed-token-rate", "0"},
	})
	c := p.Client()
	ctx := context.Background()
	created := createSessions(t, c, 100, 10)
	for i := range 10 {
		_, err := c.SignOut(ctx, created[i].Token)
		require.NoError(t, err)
	}
	// A dataset big enough to take a while to load: 1.5 M filler keys,
	// rewritten into the AOF.
	rc := rs.Client(t)
	require.NoError(t, rc.Do(ctx, "DEBUG", "POPULATE", 1500000, "filler", 32).Err())
	require.NoError(t, rc.BgRewriteAOF(ctx).Err())
	waitFor(t, 60*time.Second, 50*time.Millisecond, "AOF rewrite", func() bool {
		info, _ := rc.Info(ctx, "persistence").Result()
		return strings.Contains(info, "aof_rewrite_in_progress:0") && strings.Contains(info, "aof_rewrite_scheduled:0")
	})

	require.NoError(t, rs.Kill())
	require.NoError(t, rs.Start()) // returns once the process answers INFO, while it may still load
	started := time.Now()
	loadingSeen, unavailable := false, 0
	var recovered time.Duration
	for recovered == 0 {
		require.Less(t, time.Since(started), 60*time.Second, "sessiond never served again")
		if info, err := rc.Info(ctx, "persistence").Result(); err == nil && strings.Contains(info, "loading:1") {
			loadingSeen = true
		}
		_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: created[50].Token})
		switch {
		case err == nil:
			recovered = time.Since(started)
		case client.IsCode(err, client.CodeStoreUnavailable):
			unavailable++
			time.Sleep(10 * time.Millisecond)
		default:
			t.Fatalf("resolve while Redis loads = %v, want 503 (a 401 signs the user out)", err)
		}
	}
	require.True(t, loadingSeen, "Redis was never seen loading: the test proved nothing")
	require.Positive(t, unavailable, "no resolve was answered while Redis loaded: the 503-not-401 claim went untested")
	for i, s := range created {
		_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: s.Token})
		if i < 10 {
			require.True(t, client.IsCode(err, client.CodeInvalidToken), "revoked #%d after the restart: %v", i, err)
		} else {
			require.NoError(t, err, "session #%d after the restart", i)
		}
	}
	t.Logf("REPORT restart while loading (1.5 M keys): %d resolves answered 503 while Redis loaded, none 401; served again %v after the restart; 0 of 90 sessions lost, 0 of 10 revoked back",
		unavailable, recovered.Round(time.Millisecond))
}
