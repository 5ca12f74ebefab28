package integration_test

import (
	"bytes"
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// There is no Docker engine in CI; these tests check docker-compose.yml and
// the Dockerfile against what sessiond accepts, and run the real binary
// with the compose file's configuration.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Build           any               `yaml:"build"`
	Image           string            `yaml:"image"`
	Command         []string          `yaml:"command"`
	Environment     map[string]string `yaml:"environment"`
	Ports           []string          `yaml:"ports"`
	DependsOn       map[string]any    `yaml:"depends_on"`
	Volumes         []string          `yaml:"volumes"`
	StopGracePeriod string            `yaml:"stop_grace_period"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.yml")
	require.NoError(t, err)
	var cf composeFile
	require.NoError(t, yaml.Unmarshal(b, &cf))
	return cf
}

// sessiondServices are the services that run the repository's image.
func sessiondServices(cf composeFile) []string {
	var names []string
	for name, s := range cf.Services {
		if s.Build != nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// helpEnv returns every SESSIOND_* variable `sessiond --help` documents.
func helpEnv(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(sessiondtest.Binary(t), "--help").CombinedOutput()
	require.NoError(t, err, "sessiond --help: %s", out)
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`env (SESSIOND_[A-Z0-9_]+)`).FindAllStringSubmatch(string(out), -1) {
		names[m[1]] = true
	}
	require.Greater(t, len(names), 30, "too few environment names found in --help: the pattern no longer matches:\n%s", out)
	return names
}

var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\?)([^}]*))?\}`)

// interpolate expands ${NAME}, ${NAME:-default} and ${NAME:?message} as
// docker compose does, from vars; an unset NAME without default fails.
func interpolate(t *testing.T, s string, vars map[string]string) string {
	t.Helper()
	return composeVar.ReplaceAllStringFunc(s, func(ref string) string {
		m := composeVar.FindStringSubmatch(ref)
		if v, ok := vars[m[1]]; ok && v != "" {
			return v
		}
		if m[2] == ":-" {
			return m[3]
		}
		t.Fatalf("docker-compose.yml needs %s: %s", m[1], m[3])
		return ""
	})
}

// The compose file runs Redis with AOF and noeviction and two sessiond
// instances whose every SESSIOND_* name is one sessiond documents, on
// distinct loopback host ports mapped to the port they listen on.
func TestComposeFile(t *testing.T) {
	cf := readCompose(t)
	known := helpEnv(t)

	redis, ok := cf.Services["redis"]
	require.True(t, ok, "no redis service")
	cmd := strings.Join(redis.Command, " ")
	for _, want := range []string{"--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"} {
		require.Contains(t, cmd, want, "redis command")
	}
	require.NotEmpty(t, redis.Volumes, "Redis's AOF must live on a volume to survive the container")
	require.Empty(t, redis.Ports, "Redis must not be published on the host")

	names := sessiondServices(cf)
	require.Len(t, names, 2, "want two sessiond instances, got %v", names)
	hostPorts := map[string]string{}
	for _, name := range names {
		s := cf.Services[name]
		require.NotEmpty(t, s.Environment, "%s: no environment", name)
		for k := range s.Environment {
			if strings.HasPrefix(k, "SESSIOND_") {
				require.True(t, known[k], "%s: %s is not a variable sessiond accepts (see sessiond --help)", name, k)
			}
		}
		env := s.Environment
		require.Equal(t, "redis", env["SESSIOND_STORE"], name)
		u, err := url.Parse(env["SESSIOND_REDIS_URL"])
		require.NoError(t, err, name)
		require.Equal(t, "redis", u.Hostname(), "%s: the Redis URL must name the redis service", name)
		require.Regexp(t, `^\$\{SESSIOND_API_KEYS:\?`, env["SESSIOND_API_KEYS"], "%s: API keys must come from the operator's environment, never the file", name)
		require.Contains(t, s.DependsOn, "redis", name)

		_, listenPort, err := net.SplitHostPort(env["SESSIOND_LISTEN"])
		require.NoError(t, err, "%s: SESSIOND_LISTEN", name)
		require.Len(t, s.Ports, 1, name)
		parts := strings.Split(s.Ports[0], ":")
		require.Len(t, parts, 3, "%s: port %q: want 127.0.0.1:host:container", name, s.Ports[0])
		require.Equal(t, "127.0.0.1", parts[0], "%s: publish on loopback only", name)
		require.Equal(t, listenPort, parts[2], "%s: the container port must be the one sessiond listens on", name)
		require.NotContains(t, hostPorts, parts[1], "%s and %s publish the same host port", name, hostPorts[parts[1]])
		hostPorts[parts[1]] = name

		grace, err := time.ParseDuration(s.StopGracePeriod)
		require.NoError(t, err, "%s: stop_grace_period", name)
		delay, err := time.ParseDuration(env["SESSIOND_SHUTDOWN_DELAY"])
		require.NoError(t, err, name)
		timeout, err := time.ParseDuration(env["SESSIOND_SHUTDOWN_TIMEOUT"])
		require.NoError(t, err, name)
		require.Greater(t, grace, delay+timeout, "%s: Docker would SIGKILL a graceful shutdown", name)
	}
}

// sessiond accepts the compose file's configuration as it is: each
// instance's environment, with the Redis host and the ports pointed at
// this machine, starts and becomes ready against a real Redis started with
// the compose file's redis command line.
func TestComposeConfigurationStarts(t *testing.T) {
	cf := readCompose(t)
	redisArgs := cf.Services["redis"].Command[1:]
	rs := redistest.StartServer(t, redisArgs...)
	vars := map[string]string{"SESSIOND_API_KEYS": sessiondtest.APIKey}
	for _, name := range sessiondServices(cf) {
		var env []string
		for k, v := range cf.Services[name].Environment {
			v = interpolate(t, v, vars)
			switch k {
			case "SESSIOND_REDIS_URL":
				v = strings.Replace(v, "redis:6379", rs.Addr(), 1)
			case "SESSIOND_LISTEN", "SESSIOND_METRICS_ADDR":
				v = "127.0.0.1:0"
			case "SESSIOND_SHUTDOWN_DELAY":
				v = "0s" // the drain itself is TestInFlightRequestSurvivesSIGTERM's; here it only costs time
			}
			env = append(env, k+"="+v)
		}
		p := sessiondtest.Start(t, sessiondtest.Options{Bare: true, Env: env, APIKey: sessiondtest.APIKey})
		require.Contains(t, p.Stdout(), "(store: redis)", name)
		require.NoError(t, p.Client().Healthz(context.Background()), name)
		_, err := p.Client().ListSessions(context.Background(), "alice")
		require.NoError(t, err, "%s: an authenticated API call", name)
		require.Equal(t, 0, p.Stop(), name)
	}
}

// The Dockerfile builds ./cmd/sessiond as a static binary in a build stage
// and runs it as a non-root user in a minimal final image.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	var from, run []string
	var user, entrypoint string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch instr, rest, _ := strings.Cut(line, " "); strings.ToUpper(instr) {
		case "FROM":
			from = append(from, rest)
		case "RUN":
			run = append(run, rest)
		case "USER":
			user = rest
		case "ENTRYPOINT":
			entrypoint = rest
		}
	}
	require.GreaterOrEqual(t, len(from), 2, "want a multi-stage build")
	final := from[len(from)-1]
	require.True(t, strings.Contains(final, "distroless/static") || strings.HasPrefix(final, "scratch"),
		"final stage %q: want distroless static or scratch", final)
	var build string
	for _, r := range run {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	require.NotEmpty(t, build, "no go build step")
	require.Contains(t, build, "CGO_ENABLED=0")
	require.Regexp(t, `\./cmd/sessiond(\s|$)`, build)
	require.NotEmpty(t, user, "no USER: the image would run as root")
	require.NotContains(t, []string{"root", "0", "0:0", "root:root"}, user)
	require.Contains(t, entrypoint, "sessiond")
	require.True(t, bytes.Contains(b, []byte("COPY --from=build")), "the final stage must copy the binary from the build stage")

	ignore, err := os.ReadFile("../.dockerignore")
	require.NoError(t, err)
	require.Contains(t, strings.Fields(string(ignore)), ".git", ".dockerignore must keep .git out of the build context")
}
