// Package sessiondtest runs real sessiond processes for end-to-end tests:
// Start builds the binary once per test binary, starts it on a free
// loopback port with the given flags and environment, waits until /readyz
// answers, and stops it (by PID) when the test ends. A Process exposes its
// base URL, a Go client, its PID, signals, its exit code and everything it
// wrote to stdout and stderr, so tests can check what it logged.
//
// Processes are started with the kernel's parent-death signal on Linux, so
// none outlives a crashed or killed test binary.
//
// A package using it should call Main from TestMain, so the built binary's
// temporary directory is removed:
//
//	func TestMain(m *testing.M) { os.Exit(sessiondtest.Main(m)) }
package sessiondtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sessiond/sessiond/client"
)

// Timeouts of the harness itself: building the binary on a busy 2-core
// machine, a process becoming ready, and a process exiting after a signal.
const (
	buildTimeout = 5 * time.Minute
	readyTimeout = 20 * time.Second
	exitTimeout  = 40 * time.Second
)

// BinEnv names an environment variable holding the path of a prebuilt
// sessiond binary (for example one built with -race); when set, Binary
// uses it instead of building.
const BinEnv = "SESSIONDTEST_BIN"

// APIKey is a valid API key (sessiond wants at least 16 characters) that
// tests may use when any key will do.
const APIKey = "sessiondtest-api-key-0123456789"

var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Binary returns the path of a sessiond binary: $SESSIONDTEST_BIN if set,
// otherwise ./cmd/sessiond built once per test binary (plain build, no
// -race: the processes under test are black boxes here, and a race build
// takes minutes on a small machine).
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(BinEnv); p != "" {
		return p
	}
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "sessiondtest-bin-")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "sessiond")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, goTool(), "build", "-o", build.path, "github.com/sessiond/sessiond/cmd/sessiond")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/sessiond: %w\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("sessiondtest: %v", build.err)
	}
	return build.path
}

// goTool finds the go command: on PATH, else in the GOROOT of the test
// binary's toolchain (go test does not always put it on PATH).
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := runtime.GOROOT(); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// Main runs the tests, then removes the binary Binary built.
func Main(m *testing.M) int {
	code := m.Run()
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
	return code
}

// Options says how to start one sessiond.
type Options struct {
	// Args are extra command-line flags, e.g. "--store", "redis".
	Args []string
	// Env are extra environment variables, "NAME=value". The process
	// inherits the test's environment minus every SESSIOND_* variable, so
	// a developer's settings cannot leak in.
	Env []string
	// APIKey, when set, is passed in SESSIOND_API_KEYS and used by Client.
	APIKey string
	// RedisURL, when set, adds --store redis --redis-url (via
	// SESSIOND_REDIS_URL, as an operator would pass a URL with a password).
	RedisURL string
	// Listen is the --listen address. Default: 127.0.0.1:0, a free port
	// the kernel picks; the harness reads the real one from the banner.
	Listen string
	// Bare passes no flags but Args: the listen address comes from Env
	// (SESSIOND_LISTEN) or sessiond's default, as for an operator who just
	// runs "sessiond".
	Bare bool
	// NoReady skips waiting for /readyz (only for the banner), for tests
	// of a process that should not become ready.
	NoReady bool
}

// Process is one running (or exited) sessiond.
type Process struct {
	t      testing.TB
	cmd    *exec.Cmd
	apiKey string
	base   string

	stdout, stderr lockedBuffer

	done    chan struct{} // closed when the process has exited and been reaped
	waitErr error         // Wait's result, valid after done

	clientOnce sync.Once
	client     *client.Client
}

// bannerRE matches the first line sessiond prints on stdout.
var bannerRE = regexp.MustCompile(`sessiond listening on (https?://\S+)`)

// Start starts one sessiond and waits until it prints its banner and
// answers /readyz with 200 (unless opts.NoReady). The test fails if it does
// not within 20 s; cleanup kills it if it is still running and, when the
// test failed, logs what it wrote.
func Start(t testing.TB, opts Options) *Process {
	t.Helper()
	bin := Binary(t)
	var args []string
	if !opts.Bare {
		args = []string{"--listen", cmp(opts.Listen, "127.0.0.1:0")}
	}
	env := cleanEnv()
	if opts.RedisURL != "" {
		args = append(args, "--store", "redis")
		env = append(env, "SESSIOND_REDIS_URL="+opts.RedisURL)
	}
	if opts.APIKey != "" {
		env = append(env, "SESSIOND_API_KEYS="+opts.APIKey)
	}
	args = append(args, opts.Args...)
	env = append(env, opts.Env...)

	p := &Process{t: t, apiKey: opts.APIKey, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = env
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("sessiondtest: start %s: %v", bin, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("sessiond pid %d %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Process.Pid, args, p.Stdout(), p.Stderr())
		}
	})
	if err := p.waitStarted(opts.NoReady); err != nil {
		t.Fatalf("sessiondtest: sessiond %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, p.Stdout(), p.Stderr())
	}
	return p
}

// StartN starts n processes with the same options, one after another
// (sessiond starts in milliseconds; a sequential start keeps failures on
// the test's goroutine).
func StartN(t testing.TB, n int, opts Options) []*Process {
	t.Helper()
	ps := make([]*Process, n)
	for i := range ps {
		ps[i] = Start(t, opts)
	}
	return ps
}

// waitStarted waits for the banner and then, unless noReady, for /readyz.
func (p *Process) waitStarted(noReady bool) error {
	deadline := time.Now().Add(readyTimeout)
	for delay := 2 * time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		if p.base == "" {
			if m := bannerRE.FindStringSubmatch(p.Stdout()); m != nil {
				p.base = m[1]
				if noReady {
					return nil
				}
			}
		}
		if p.base != "" && p.ready() {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready: %v", p.waitErr)
		case <-time.After(delay):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %v", readyTimeout)
		}
	}
}

func (p *Process) ready() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// BaseURL is the process's API root, e.g. "http://127.0.0.1:41234".
func (p *Process) BaseURL() string { return p.base }

// Addr is the listener's host:port.
func (p *Process) Addr() string {
	_, hostport, _ := strings.Cut(p.base, "://")
	return hostport
}

// Client returns a client of this process that sends its API key (if
// any). The same client is returned on every call.
func (p *Process) Client() *client.Client {
	p.clientOnce.Do(func() {
		var opts []client.Option
		if p.apiKey != "" {
			opts = append(opts, client.WithAPIKey(p.apiKey))
		}
		c, err := client.New(p.base, opts...)
		if err != nil {
			panic("sessiondtest: client of " + p.base + ": " + err.Error()) // the base URL came from the banner
		}
		p.client = c
	})
	return p.client
}

// PID is the process ID.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL (a crash) and waits until the process is gone.
func (p *Process) Kill() {
	p.t.Helper()
	p.kill()
}

func (p *Process) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Stop sends SIGTERM and returns the exit code once the process exits;
// the test fails if it takes longer than 40 s.
func (p *Process) Stop() int {
	p.t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatalf("sessiondtest: SIGTERM to %d: %v", p.PID(), err)
	}
	return p.Wait(exitTimeout)
}

// Wait waits up to timeout for the process to exit and returns its exit
// code: -1 if a signal killed it. The test fails (and the process is
// killed) if it is still running after timeout.
func (p *Process) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		p.t.Fatalf("sessiondtest: sessiond pid %d did not exit within %v", p.PID(), timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stdout returns everything the process has written to stdout so far.
func (p *Process) Stdout() string { return p.stdout.String() }

// Stderr returns everything the process has written to stderr so far (its
// structured log).
func (p *Process) Stderr() string { return p.stderr.String() }

// Logged reports whether s appears anywhere in what the process wrote
// (stdout or stderr), e.g. to prove a token never reaches the logs.
func (p *Process) Logged(s string) bool {
	return strings.Contains(p.Stdout(), s) || strings.Contains(p.Stderr(), s)
}

// lockedBuffer is a bytes.Buffer safe for the exec copier and the test to
// use at once.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cleanEnv is the test's environment without SESSIOND_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESSIOND_") {
			env = append(env, kv)
		}
	}
	return env
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
