package sessiondtest_test

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

func TestMain(m *testing.M) { os.Exit(sessiondtest.Main(m)) }

// The harness starts a ready process on a port of its own, its client
// reaches it, SIGTERM gives exit code 0, and the logs are captured.
func TestStartStop(t *testing.T) {
	p := sessiondtest.Start(t, sessiondtest.Options{APIKey: sessiondtest.APIKey})
	require.NotZero(t, p.PID())
	require.True(t, strings.HasPrefix(p.BaseURL(), "http://127.0.0.1:"), "BaseURL() = %q", p.BaseURL())
	require.Contains(t, p.Stdout(), "sessiond listening on "+p.BaseURL())

	ctx := context.Background()
	created, err := p.Client().CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	require.NoError(t, err)
	res, err := p.Client().Resolve(ctx, client.ResolveRequest{SessionToken: created.Token})
	require.NoError(t, err)
	require.Equal(t, "alice", res.Session.UserID)

	require.Equal(t, 0, p.Stop())
	require.Contains(t, p.Stderr(), `"msg":"stopped"`)
	require.False(t, p.Logged(created.Token), "the session token is in the logs")
}

// Kill ends the process at once: a signal death, exit code -1.
func TestKill(t *testing.T) {
	p := sessiondtest.Start(t, sessiondtest.Options{})
	p.Kill()
	require.Equal(t, -1, p.Wait(time.Second))
	require.Error(t, p.Signal(syscall.SIGTERM), "a reaped process takes no signal")
}

// The fake upstream's access tokens make sessiond create a session through
// the JWT step, and its user fetch is what sessiond called.
func TestUpstreamJWT(t *testing.T) {
	up := sessiondtest.StartUpstream(t)
	p := sessiondtest.Start(t, sessiondtest.Options{Args: up.Args(), Env: up.Env()})
	res, err := p.Client().Resolve(context.Background(), client.ResolveRequest{AccessToken: up.Token(t, "bob", time.Minute)})
	require.NoError(t, err)
	require.Equal(t, "jwt", res.Source)
	require.Equal(t, "bob", res.Session.UserID)
	require.Equal(t, 1, up.Calls())
}
