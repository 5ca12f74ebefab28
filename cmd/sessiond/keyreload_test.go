package main

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

const (
	keyOld = "old-key-0123456789abcdef"
	keyNew = "new-key-0123456789abcdef"
)

// allowed reports whether auth lets a request with key through.
func allowed(auth *authenticator, key string) bool {
	r := httptest.NewRequest("GET", "/v1/users/u/sessions", nil)
	r.Header.Set("Authorization", "Bearer "+key)
	_, _, ok := auth.authenticate(r)
	return ok
}

func writeKeys(t *testing.T, path string, keys ...string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte("# rotated\n"+strings.Join(keys, "\n")+"\n"), 0o600))
}

// TestReloadAPIKeys walks a rotation through reloads of the key file: add
// the new key, drop the old one; and every bad file on the way (a short
// key, no key, no file) keeps the keys in force, with no key in the log.
func TestReloadAPIKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, path, keyOld)
	cfg := &config{APIKeyFile: path}
	keys, err := apiKeys(cfg)
	require.NoError(t, err)
	auth := newAuthenticator(keys, false)
	met := newMetrics()
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	reload := func() { reloadAPIKeys(cfg, auth, log, met, false) }
	requireKeys := func(old, new bool) {
		t.Helper()
		require.Equal(t, old, allowed(auth, keyOld), "old key allowed")
		require.Equal(t, new, allowed(auth, keyNew), "new key allowed")
	}

	reload() // unchanged: nothing happens, nothing is said
	requireKeys(true, false)
	require.Empty(t, logs.String())

	writeKeys(t, path, keyOld, keyNew)
	reload()
	requireKeys(true, true)
	require.Contains(t, logs.String(), `"added":["`+keyID(sha256.Sum256([]byte(keyNew)))+`"]`)

	for _, bad := range []struct {
		name  string
		write func()
		msg   string
	}{
		{"a short key", func() { writeKeys(t, path, keyNew, "short") }, "at least 16 characters"},
		{"no key", func() { writeKeys(t, path) }, "holds no key"},
		{"no file", func() { require.NoError(t, os.Remove(path)) }, "no such file"},
	} {
		before := counterValue(t, met.keyReloads.WithLabelValues("error"))
		bad.write()
		reload()
		requireKeys(true, true)
		require.Equal(t, before+1, counterValue(t, met.keyReloads.WithLabelValues("error")), bad.name)
		require.Contains(t, logs.String(), bad.msg, bad.name)
	}

	writeKeys(t, path, keyNew)
	reload()
	requireKeys(false, true)
	require.Contains(t, logs.String(), `"removed":["`+keyID(sha256.Sum256([]byte(keyOld)))+`"]`)
	require.Equal(t, 2.0, counterValue(t, met.keyReloads.WithLabelValues("changed")))
	for _, k := range []string{keyOld, keyNew, "short"} {
		require.NotContains(t, logs.String(), k, "a key in the log")
	}
}

// TestRunReloadsAPIKeys: a running sessiond takes a new key from its key
// file on SIGHUP, and by itself within --api-key-file-reload.
func TestRunReloadsAPIKeys(t *testing.T) {
	status := func(d *daemon, key string) int {
		req, err := http.NewRequest("GET", d.url+"/v1/users/alice/sessions", nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	t.Run("SIGHUP", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys")
		writeKeys(t, path, keyOld)
		d := startRun(t, []string{"--api-key-file", path, "--api-key-file-reload", "0"}, nil)
		require.Equal(t, http.StatusOK, status(d, keyOld))
		require.Equal(t, http.StatusUnauthorized, status(d, keyNew))
		writeKeys(t, path, keyNew)
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
		waitFor(t, "the new key after SIGHUP", func() bool { return status(d, keyNew) == http.StatusOK })
		require.Equal(t, http.StatusUnauthorized, status(d, keyOld))
	})
	t.Run("interval", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keys")
		writeKeys(t, path, keyOld)
		d := startRun(t, []string{"--api-key-file", path, "--api-key-file-reload", "20ms"}, nil)
		require.Equal(t, http.StatusUnauthorized, status(d, keyNew))
		writeKeys(t, path, keyOld, keyNew)
		waitFor(t, "the new key by the periodic reload", func() bool { return status(d, keyNew) == http.StatusOK })
		require.Equal(t, http.StatusOK, status(d, keyOld))
	})
	t.Run("no key file", func(t *testing.T) {
		// A stray SIGHUP neither kills sessiond nor changes anything.
		d := startRun(t, nil, nil)
		require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGHUP))
		waitFor(t, "the SIGHUP log line", func() bool { return strings.Contains(d.stderr.String(), "no --api-key-file to reload") })
		require.Equal(t, http.StatusOK, status(d, "anything"))
	})
}

func TestWatchAPIKeysStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchAPIKeys(ctx, &config{}, newAuthenticator(nil, false), slog.New(slog.DiscardHandler), newMetrics(), nil, nil)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("watchAPIKeys did not return after cancel")
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

// TestReloadAPIKeysSameFingerprint: a new key whose 4-byte fingerprint is
// an old key's (these two share 8b8a3288) still replaces it: the change
// is seen on the full digests.
func TestReloadAPIKeysSameFingerprint(t *testing.T) {
	const a, b = "rotation-key-00021733", "rotation-key-00089147"
	require.Equal(t, keyID(sha256.Sum256([]byte(a))), keyID(sha256.Sum256([]byte(b))), "the keys no longer share a fingerprint")
	path := filepath.Join(t.TempDir(), "keys")
	writeKeys(t, path, a)
	cfg := &config{APIKeyFile: path}
	keys, err := apiKeys(cfg)
	require.NoError(t, err)
	auth := newAuthenticator(keys, false)
	met := newMetrics()
	var logs lockedBuffer
	writeKeys(t, path, b)
	reloadAPIKeys(cfg, auth, slog.New(slog.NewJSONHandler(&logs, nil)), met, true)
	require.False(t, allowed(auth, a), "the removed key is still allowed")
	require.True(t, allowed(auth, b), "the new key is not allowed")
	require.Equal(t, 1.0, counterValue(t, met.keyReloads.WithLabelValues("changed")))
	require.NotContains(t, logs.String(), "unchanged")
	for _, k := range []string{a, b} {
		require.NotContains(t, logs.String(), k, "a key in the log")
	}
}

// TestKeyReloadMetricsStartAtZero: both series of
// sessiond_api_key_reloads_total are served before any reload, so the
// first failure is an increase a rate() or increase() alert can see.
func TestKeyReloadMetricsStartAtZero(t *testing.T) {
	w := httptest.NewRecorder()
	newMetrics().handler.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, http.StatusOK, w.Code)
	for _, result := range []string{"changed", "error"} {
		require.Contains(t, w.Body.String(), `sessiond_api_key_reloads_total{result="`+result+`"} 0`+"\n")
	}
}
