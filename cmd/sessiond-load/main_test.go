package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// loadDuration lengthens the smoke runs into a measurement:
//
//	go test ./cmd/sessiond-load -run TestLoad -v -load.duration 10s
var loadDuration = flag.Duration("load.duration", time.Second, "measured duration of each TestLoad run")

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(sessiondtest.Main(m))
}

func env(key string) func(string) string {
	return func(name string) string {
		if name == "SESSIOND_LOAD_API_KEY" {
			return key
		}
		return ""
	}
}

// runLoad drives p for loadDuration and returns the JSON report.
func runLoad(t *testing.T, p *sessiondtest.Process) Report {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), []string{
		"-url", p.BaseURL(), "-duration", loadDuration.String(), "-warmup", "200ms",
		"-concurrency", "8", "-sessions", "200", "-json",
	}, env(sessiondtest.APIKey), &out)
	require.NoError(t, err, out.String())
	var rep Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	t.Logf("%+v", rep)
	require.Zero(t, rep.Errors, rep.FirstError)
	require.Positive(t, rep.Requests)
	require.Positive(t, rep.PerSecond)
	require.True(t, 0 < rep.P50 && rep.P50 <= rep.P99 && rep.P99 <= rep.P999 && rep.P999 <= rep.Max,
		"percentiles out of order: %+v", rep)
	return rep
}

// The driver runs against a real sessiond on the memory store and on a
// real Redis, resolving every session it created without an error.
func TestLoad(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		p := sessiondtest.Start(t, sessiondtest.Options{APIKey: sessiondtest.APIKey})
		runLoad(t, p)
	})
	t.Run("redis", func(t *testing.T) {
		rs := redistest.StartServer(t)
		p := sessiondtest.Start(t, sessiondtest.Options{APIKey: sessiondtest.APIKey, RedisURL: rs.URL()})
		runLoad(t, p)
	})
}

// -requests bounds the run by count: exactly that many measured resolves.
func TestRequestLimit(t *testing.T) {
	p := sessiondtest.Start(t, sessiondtest.Options{APIKey: sessiondtest.APIKey})
	var out bytes.Buffer
	err := run(context.Background(), []string{"-url", p.BaseURL(), "-duration", "0", "-requests", "300",
		"-warmup", "0", "-concurrency", "3", "-sessions", "10"}, env(sessiondtest.APIKey), &out)
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), ": 300 requests in ")
	require.Contains(t, out.String(), "errors 0")
}

// A wrong API key stops the run at the first sign-in, with the server's
// 401, before any load.
func TestWrongAPIKey(t *testing.T) {
	p := sessiondtest.Start(t, sessiondtest.Options{APIKey: sessiondtest.APIKey})
	var out bytes.Buffer
	err := run(context.Background(), []string{"-url", p.BaseURL(), "-duration", "1s"}, env("not-the-key-0123456789"), &out)
	require.ErrorContains(t, err, "401")
	require.NotContains(t, err.Error(), "not-the-key")
	require.Empty(t, out.String())
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-duration", "0"},
		{"-concurrency", "0"},
		{"-concurrency", "20000"},
		{"-sessions", "0"},
		{"-url", "127.0.0.1:8080"},
		{"-url", "ftp://x"},
		{"-duration", "-1s"},
		{"extra"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), args, env(""), &out)
		require.Error(t, err, "run(%q)", args)
	}
}
