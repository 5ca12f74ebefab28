package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/redistest"
)

// daemon is one run() in the test process.
type daemon struct {
	url    string
	stdout *lockedBuffer
	stderr *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

// startRun starts run with args (plus --listen on a free loopback port)
// and waits until it prints where it listens.
func startRun(t *testing.T, args []string, env map[string]string) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
	args = append([]string{"--listen", "127.0.0.1:0"}, args...)
	go func() { d.done <- run(ctx, args, envMap(env), d.stdout, d.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.done:
		case <-time.After(10 * time.Second):
			t.Error("run did not return 10s after cancel")
		}
	})
	re := regexp.MustCompile(`listening on (\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(d.stdout.String()); m != nil {
			d.url = m[1]
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("run returned before listening: %v\nstderr: %s", err, d.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("run did not print its address in 10s; stdout: %s stderr: %s", d.stdout.String(), d.stderr.String())
	return nil
}

// stop cancels run (as SIGTERM does) and returns its error.
func (d *daemon) stop(t *testing.T) error {
	t.Helper()
	d.cancel()
	select {
	case err := <-d.done:
		d.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return 10s after cancel")
		return nil
	}
}

// TestRunBannerCurlWorks: on a bare machine (memory store, no flags but the
// port), sessiond prints where it listens and a curl command; that command,
// run as printed, creates a session.
func TestRunBannerCurlWorks(t *testing.T) {
	d := startRun(t, nil, nil)
	out := d.stdout.String()
	require.Contains(t, out, "store: memory")
	m := regexp.MustCompile(`(?m)^\s+(curl .*)$`).FindStringSubmatch(out)
	require.NotNil(t, m, "banner has a curl example: %s", out)
	curl := m[1]
	require.Equal(t, curlExample(&config{}, d.url, false), curl)

	// The same request from Go, as the curl line says: POST, the header, the body.
	body := regexp.MustCompile(`-d '([^']*)'`).FindStringSubmatch(curl)[1]
	req, err := http.NewRequest("POST", d.url+"/v1/sessions", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", data)
	var created client.CreateResponse
	require.NoError(t, json.Unmarshal(data, &created))
	require.Equal(t, "alice", created.Session.UserID)

	// And the printed command itself, when curl is installed.
	if _, err := exec.LookPath("curl"); err == nil {
		cmd := exec.Command("sh", "-c", curl)
		outb, err := cmd.Output()
		require.NoError(t, err, "%s", outb)
		var viaCurl client.CreateResponse
		require.NoError(t, json.Unmarshal(outb, &viaCurl), "%s", outb)
		require.Equal(t, "alice", viaCurl.Session.UserID)
		require.Len(t, viaCurl.Token, 46)
	} else {
		t.Log("curl not installed: checked the same request from Go only")
	}
	require.NoError(t, d.stop(t))
	require.Contains(t, d.stderr.String(), `"msg":"stopped"`)
}

// TestRunGracefulShutdown: a request in flight when the context is
// cancelled (SIGTERM) completes with 201, /readyz turns 503 during the
// shutdown delay, and run returns nil.
func TestRunGracefulShutdown(t *testing.T) {
	d := startRun(t, []string{"--shutdown-delay", "300ms"}, nil)
	c, err := client.New(d.url)
	require.NoError(t, err)
	require.NoError(t, c.Readyz(context.Background()))

	// A request whose body is still arriving: the handler is running.
	pr, pw := io.Pipe()
	req, err := http.NewRequest("POST", d.url+"/v1/sessions", pr)
	require.NoError(t, err)
	type result struct {
		status int
		err    error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			inflight <- result{err: err}
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		inflight <- result{status: resp.StatusCode}
	}()
	_, err = pw.Write([]byte(`{"userId":"in-flight",`))
	require.NoError(t, err)
	waitFor(t, "the request to be in flight", func() bool {
		// The scrape itself is one request in flight; the other is ours.
		return strings.Contains(scrape(t, d.url), "sessiond_http_requests_in_flight 2")
	})

	d.cancel()
	waitFor(t, "/readyz to say shutting_down", func() bool {
		return client.IsCode(c.Readyz(context.Background()), client.CodeShuttingDown)
	})
	_, err = pw.Write([]byte(`"user":{"n":1}}`))
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	select {
	case r := <-inflight:
		require.NoError(t, r.err)
		require.Equal(t, http.StatusCreated, r.status)
	case <-time.After(10 * time.Second):
		t.Fatal("the in-flight request did not complete")
	}
	require.NoError(t, d.stop(t))
	// The listener is closed.
	_, err = net.DialTimeout("tcp", strings.TrimPrefix(d.url, "http://"), time.Second)
	require.Error(t, err)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestRunRefusesRedisWithoutAuth(t *testing.T) {
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"--store", "redis", "--redis-url", "redis://127.0.0.1:1"}, envMap(nil), &bytes.Buffer{}, &stderr)
	require.ErrorContains(t, err, "without caller authentication")
	require.ErrorContains(t, err, "--insecure-no-auth")
}

func TestRunRejectsBadConfig(t *testing.T) {
	var stdout bytes.Buffer
	err := run(t.Context(), []string{"--listen", "127.0.0.1:0", "--api-key-file", "/nonexistent/keys"}, envMap(nil), &stdout, &bytes.Buffer{})
	require.ErrorContains(t, err, "--api-key-file")
	require.Empty(t, stdout.String(), "nothing listens, nothing is announced")
}

// TestRunMetricsAddr: with --metrics-addr, /metrics moves to its own
// listener and leaves the API port.
func TestRunMetricsAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	d := startRun(t, []string{"--metrics-addr", addr}, nil)
	require.Contains(t, scrape(t, "http://"+addr), "sessiond_http_requests_in_flight")
	resp, err := http.Get(d.url + "/metrics")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	resp, err = http.Get("http://" + addr + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestRunRedisTwoInstances: two sessiond processes' worth of run() on one
// real Redis: a session created on A resolves on B, revoke-all on B ends it
// on A, and the API key is required.
func TestRunRedisTwoInstances(t *testing.T) {
	srv := redistest.Standalone(t)
	const key = "redis-test-key-0123456789"
	args := []string{"--store", "redis", "--redis-url", srv.URL(), "--redis-key-prefix", srv.Prefix(t)}
	env := map[string]string{"SESSIOND_API_KEYS": key}
	a := startRun(t, args, env)
	b := startRun(t, args, env)
	require.Contains(t, a.stdout.String(), `Authorization: Bearer $API_KEY`)
	ctx := context.Background()
	ca, err := client.New(a.url, client.WithAPIKey(key))
	require.NoError(t, err)
	cb, err := client.New(b.url, client.WithAPIKey(key))
	require.NoError(t, err)

	require.NoError(t, ca.Readyz(ctx))
	created, err := ca.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	require.NoError(t, err)
	res, err := cb.Resolve(ctx, client.ResolveRequest{SessionToken: created.Token})
	require.NoError(t, err)
	require.Equal(t, created.Session.ID, res.Session.ID)
	n, err := cb.RevokeUserSessions(ctx, "alice")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, err = ca.Lookup(ctx, created.Token)
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeInvalidToken)

	anon, err := client.New(a.url)
	require.NoError(t, err)
	_, err = anon.ListSessions(ctx, "alice")
	requireClientCode(t, err, http.StatusUnauthorized, client.CodeUnauthorized)
	require.NoError(t, a.stop(t))
	require.NoError(t, b.stop(t))
}

// TestRunRedisDown: Redis unreachable at start is not fatal (orchestrators
// start things in any order), but /readyz says store_unavailable and the
// API answers 503, never "signed out".
func TestRunRedisDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	d := startRun(t, []string{"--store", "redis", "--redis-url", "redis://" + dead, "--insecure-no-auth", "--request-timeout", "500ms"}, nil)
	c, err := client.New(d.url)
	require.NoError(t, err)
	ctx := context.Background()
	requireClientCode(t, c.Readyz(ctx), http.StatusServiceUnavailable, client.CodeStoreUnavailable)
	require.NoError(t, c.Healthz(ctx))
	_, err = c.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	requireClientCode(t, err, http.StatusServiceUnavailable, client.CodeStoreUnavailable)
	require.Contains(t, d.stderr.String(), "Redis does not answer at start")
}

// TestRunRedisEvictionPolicy: a Redis that may evict any key is refused by
// default, accepted with a warning under --redis-eviction-check warn.
func TestRunRedisEvictionPolicy(t *testing.T) {
	srv := redistest.StartServer(t, "--maxmemory-policy", "allkeys-lru")
	args := []string{"--listen", "127.0.0.1:0", "--store", "redis", "--redis-url", srv.URL(), "--insecure-no-auth"}
	err := run(t.Context(), args, envMap(nil), &bytes.Buffer{}, &bytes.Buffer{})
	require.Error(t, err)
	require.ErrorContains(t, err, "maxmemory-policy")

	d := startRun(t, []string{"--store", "redis", "--redis-url", srv.URL(), "--insecure-no-auth", "--redis-eviction-check", "warn"}, nil)
	require.Contains(t, d.stderr.String(), "may evict session keys")
}

func TestBaseURL(t *testing.T) {
	for _, tc := range []struct {
		addr string
		tls  bool
		want string
	}{
		{"127.0.0.1:8080", false, "http://127.0.0.1:8080"},
		{"0.0.0.0:8080", false, "http://127.0.0.1:8080"},
		{"[::]:8080", true, "https://127.0.0.1:8080"},
		{"[::1]:9", false, "http://[::1]:9"},
	} {
		ta, err := net.ResolveTCPAddr("tcp", tc.addr)
		require.NoError(t, err)
		require.Equal(t, tc.want, baseURL(ta, tc.tls), "baseURL(%s)", tc.addr)
	}
}

// TestRunPostgres: the PostgreSQL store wired end to end, in a schema of
// its own. Skipped without a reachable server, except under CI=true.
func TestRunPostgres(t *testing.T) {
	url := os.Getenv("POSTGRES_URL")
	if url == "" {
		url = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err == nil {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = pool.Ping(pctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s: %v (CI=true: it must run)", url, err)
		}
		t.Skipf("PostgreSQL not reachable: %v", err)
	}
	t.Cleanup(pool.Close)
	schema := fmt.Sprintf("sessiond_run_%d", time.Now().UnixNano())
	_, err = pool.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() { pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })

	const key = "pg-test-key-0123456789abc"
	// Without --postgres-migrate the table does not exist yet: the process
	// runs, but it is not ready, so a load balancer sends it nothing.
	unmigrated := startRun(t, []string{"--store", "postgres", "--postgres-url", url, "--postgres-schema", schema},
		map[string]string{"SESSIOND_API_KEYS": key})
	uc, err := client.New(unmigrated.url, client.WithAPIKey(key))
	require.NoError(t, err)
	require.True(t, client.IsCode(uc.Readyz(ctx), "store_unavailable"), "readyz before Migrate must be 503 store_unavailable")
	require.NoError(t, unmigrated.stop(t))

	d := startRun(t, []string{"--store", "postgres", "--postgres-url", url, "--postgres-schema", schema, "--postgres-migrate"},
		map[string]string{"SESSIOND_API_KEYS": key})
	c, err := client.New(d.url, client.WithAPIKey(key))
	require.NoError(t, err)
	require.NoError(t, c.Readyz(ctx))
	created, err := c.CreateSession(ctx, client.CreateRequest{UserID: "alice", User: []byte(`{"n":1}`)})
	require.NoError(t, err)
	res, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: created.Token})
	require.NoError(t, err)
	require.Equal(t, created.Session.ID, res.Session.ID)
	var rows int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+schema+".sessions").Scan(&rows))
	require.Equal(t, 1, rows, "the session is in PostgreSQL")
	require.NoError(t, d.stop(t))
}

// TestRunSlowClientCutOff: a client that never finishes its headers is
// disconnected after --read-header-timeout (slowloris).
func TestRunSlowClientCutOff(t *testing.T) {
	d := startRun(t, []string{"--read-header-timeout", "200ms"}, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(d.url, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("POST /v1/sessions HTTP/1.1\r\nHost: x\r\n"))
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = io.ReadAll(conn) // returns when the server closes the connection
	require.NoError(t, err, "the server closed the connection (not our 5s deadline)")
	require.Less(t, time.Since(start), 3*time.Second)
}

// TestRunRedisFull: a Redis at maxmemory with noeviction refuses writes;
// a sign-in then gets 503 store_unavailable whose message says the store is
// full (an operator's problem, not a retry's), while reads still work.
func TestRunRedisFull(t *testing.T) {
	srv := redistest.StartServer(t, "--maxmemory-policy", "noeviction")
	d := startRun(t, []string{"--store", "redis", "--redis-url", srv.URL(), "--insecure-no-auth"}, nil)
	c, err := client.New(d.url)
	require.NoError(t, err)
	ctx := context.Background()
	created, err := c.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	require.NoError(t, err)

	rc := srv.Client(t)
	require.NoError(t, rc.ConfigSet(ctx, "maxmemory", "1").Err())
	t.Cleanup(func() { rc.ConfigSet(context.Background(), "maxmemory", "0") })
	_, err = c.CreateSession(ctx, client.CreateRequest{UserID: "bob"})
	requireClientCode(t, err, http.StatusServiceUnavailable, client.CodeStoreUnavailable)
	var ce *client.Error
	require.ErrorAs(t, err, &ce)
	require.Contains(t, ce.Message, "out of memory")
	_, err = c.Lookup(ctx, created.Token)
	require.NoError(t, err, "reads still work")
}
