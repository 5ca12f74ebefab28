// Package integration_test runs sessiond end to end: built binaries, real
// processes on loopback ports, a real redis-server (and PostgreSQL when
// reachable), and the repository's docker-compose.yml and Dockerfile
// checked against what sessiond accepts.
package integration_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

func TestMain(m *testing.M) { os.Exit(sessiondtest.Main(m)) }

// startRedisCluster starts a redis-server of the test's own and n sessiond
// processes sharing it, each requiring the test API key.
func startRedisFleet(t *testing.T, n int, extra ...string) (*redistest.Server, []*sessiondtest.Process) {
	t.Helper()
	rs := redistest.StartServer(t)
	ps := sessiondtest.StartN(t, n, sessiondtest.Options{
		APIKey:   sessiondtest.APIKey,
		RedisURL: rs.URL(),
		Args:     extra,
	})
	return rs, ps
}

// requireNotLogged fails the test if any process wrote any of the secrets
// (tokens, API keys) to stdout or stderr.
func requireNotLogged(t *testing.T, ps []*sessiondtest.Process, secrets ...string) {
	t.Helper()
	for _, p := range ps {
		require.NotEmpty(t, p.Stderr(), "sessiond pid %d logged nothing: the check would prove nothing", p.PID())
		for i, s := range secrets {
			require.NotEmpty(t, s)
			require.False(t, p.Logged(s), "secret #%d appears in the output of sessiond pid %d", i, p.PID())
		}
	}
}
