package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// envMap is a getenv over a map.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, envMap(nil), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:8080", cfg.Listen)
	require.Equal(t, "memory", cfg.Store)
	require.Equal(t, 30*24*time.Hour, cfg.MaxAge)
	require.Equal(t, 24*time.Hour, cfg.UpdateAge)
	require.Equal(t, int64(1<<20), cfg.MaxBodyBytes)
	require.Equal(t, 5*time.Second, cfg.ReadHeaderTimeout)
	require.Equal(t, "session-token", cfg.CookieName)
	require.Equal(t, "evict-oldest", cfg.OnLimit)
	require.Equal(t, "refuse", cfg.RedisEvictionCheck)
	require.False(t, cfg.InsecureNoAuth)
}

func TestConfigFlagsBeatEnv(t *testing.T) {
	env := map[string]string{
		"SESSIOND_LISTEN":                "10.0.0.1:9000",
		"SESSIOND_MAX_AGE":               "1h",
		"SESSIOND_API_KEYS":              "env-key-0123456789abcd, env-key-2-0123456789abcd",
		"SESSIOND_MAX_SESSIONS_PER_USER": "5",
		"SESSIOND_INSECURE_COOKIES":      "true",
		"SESSIOND_REDIS_CLUSTER_ADDRS":   "a:1,b:2",
		"SESSIOND_STORE":                 "redis",
	}
	cfg, err := parseConfig([]string{"--listen", "127.0.0.1:9999", "--max-age=2h"}, envMap(env), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:9999", cfg.Listen, "the flag wins")
	require.Equal(t, 2*time.Hour, cfg.MaxAge, "the flag wins")
	require.Equal(t, []string{"env-key-0123456789abcd", "env-key-2-0123456789abcd"}, cfg.APIKeys, "env fills what no flag set")
	require.Equal(t, 5, cfg.MaxSessionsPerUser)
	require.True(t, cfg.InsecureCookies)
	require.Equal(t, []string{"a:1", "b:2"}, cfg.RedisClusterAddrs)
	require.Equal(t, "redis", cfg.Store)

	// A list flag on the command line replaces the environment's list.
	cfg, err = parseConfig([]string{"--api-keys", "flag-key-0123456789abcd"}, envMap(env), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, []string{"flag-key-0123456789abcd"}, cfg.APIKeys)
}

func TestConfigBadEnvValue(t *testing.T) {
	_, err := parseConfig(nil, envMap(map[string]string{"SESSIOND_MAX_AGE": "forever"}), &bytes.Buffer{})
	require.ErrorContains(t, err, "SESSIOND_MAX_AGE")
	require.ErrorContains(t, err, "forever")

	// A secret is never echoed, even when it fails to parse.
	_, err = parseConfig(nil, envMap(map[string]string{"SESSIOND_REDIS_URL": "http://user:hunter2@x", "SESSIOND_STORE": "redis", "SESSIOND_INSECURE_NO_AUTH": "1"}), &bytes.Buffer{})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2")
	_, err = parseConfig(nil, envMap(map[string]string{"SESSIOND_API_KEYS": "short-secret"}), &bytes.Buffer{})
	require.ErrorContains(t, err, "at least 16 characters")
	require.NotContains(t, err.Error(), "short-secret")
}

func TestConfigHelpListsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"--help"}, envMap(nil), &out)
	require.ErrorIs(t, err, errHelp)
	help := out.String()
	n := 0
	fs, sections := newFlagSet(&config{})
	inSection := 0
	for _, sec := range sections {
		require.NotEmpty(t, sec.names, "section %q", sec.title)
		require.Contains(t, help, "\n"+sec.title+":\n")
		inSection += len(sec.names)
	}
	fs.VisitAll(func(f *flag.Flag) {
		n++
		require.Regexp(t, `(?m)^  --`+f.Name+`( |$)`, help, "help documents --%s", f.Name)
		require.Contains(t, help, "env "+envName(f.Name), "help names the environment variable of --%s", f.Name)
		require.NotEmpty(t, f.Usage, "--%s has a description", f.Name)
	})
	require.Greater(t, n, 50, "sanity: the flag set was walked")
	require.Equal(t, n, inSection, "every flag is in exactly one section of --help")
	require.Contains(t, help, "default 127.0.0.1:8080")
	require.Contains(t, help, "default memory")
	require.Contains(t, help, "default 720h0m0s")

	// run treats --help as success and prints to stdout.
	out.Reset()
	require.NoError(t, run(t.Context(), []string{"-h"}, envMap(nil), &out, &bytes.Buffer{}))
	require.Contains(t, out.String(), "--listen")
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{
		"listen":                "SESSIOND_LISTEN",
		"redis-sentinel-master": "SESSIOND_REDIS_SENTINEL_MASTER",
		"max-sessions-per-user": "SESSIOND_MAX_SESSIONS_PER_USER",
	} {
		require.Equal(t, want, envName(in), "envName(%q)", in)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // substring of the error; "" means valid
	}{
		{"memory without auth", nil, ""},
		{"redis without auth", []string{"--store", "redis", "--redis-url", "redis://x:6379"}, "without caller authentication"},
		{"postgres without auth", []string{"--store", "postgres", "--postgres-url", "postgres://x/db"}, "without caller authentication"},
		{"redis insecure", []string{"--store", "redis", "--redis-url", "redis://x:6379", "--insecure-no-auth"}, ""},
		{"redis with keys", []string{"--store", "redis", "--redis-url", "redis://x:6379", "--api-keys", "k-0123456789abcdef"}, ""},
		{"redis with key file", []string{"--store", "redis", "--redis-url", "redis://x:6379", "--api-key-file", "/keys"}, ""},
		{"redis with mtls", []string{"--store", "redis", "--redis-url", "redis://x:6379", "--tls-cert", "c", "--tls-key", "k", "--client-ca", "ca"}, ""},
		{"redis sentinel", []string{"--store", "redis", "--redis-sentinel-master", "m", "--redis-sentinel-addrs", "a:1,b:2", "--insecure-no-auth"}, ""},
		{"redis cluster", []string{"--store", "redis", "--redis-cluster-addrs", "a:1,b:2", "--insecure-no-auth"}, ""},
		{"redis cluster wait", []string{"--store", "redis", "--redis-cluster-addrs", "a:1,b:2", "--insecure-no-auth", "--redis-wait-replicas", "1"}, ""},
		{"negative wait", []string{"--store", "redis", "--redis-cluster-addrs", "a:1", "--insecure-no-auth", "--redis-wait-replicas", "-1"}, "--redis-wait-replicas must not be negative"},
		{"zero wait timeout", []string{"--store", "redis", "--redis-url", "redis://x", "--insecure-no-auth", "--redis-wait-replicas", "1", "--redis-wait-timeout", "0s"}, "--redis-wait-timeout must be positive"},
		{"redis without address", []string{"--store", "redis", "--insecure-no-auth"}, "exactly one of"},
		{"redis url and cluster", []string{"--store", "redis", "--redis-url", "redis://x", "--redis-cluster-addrs", "a:1", "--insecure-no-auth"}, "exactly one of"},
		{"sentinel without addrs", []string{"--store", "redis", "--redis-sentinel-master", "m", "--insecure-no-auth"}, "go together"},
		{"redis url wrong scheme", []string{"--store", "redis", "--redis-url", "http://x", "--insecure-no-auth"}, "--redis-url"},
		{"redis flags with memory", []string{"--redis-url", "redis://x"}, "add --store redis"},
		{"eviction check", []string{"--store", "redis", "--redis-url", "redis://x", "--insecure-no-auth", "--redis-eviction-check", "maybe"}, "--redis-eviction-check"},
		{"postgres without url", []string{"--store", "postgres", "--insecure-no-auth"}, "needs --postgres-url"},
		{"unknown store", []string{"--store", "mongo"}, "want memory, redis or postgres"},
		{"bad listen", []string{"--listen", "8080"}, "--listen"},
		{"bad on-limit", []string{"--on-limit", "drop"}, "--on-limit"},
		{"bad samesite", []string{"--cookie-samesite", "sometimes"}, "--cookie-samesite"},
		{"short key", []string{"--api-keys", "short"}, "at least 16"},
		{"tls cert without key", []string{"--tls-cert", "c"}, "go together"},
		{"client ca without tls", []string{"--client-ca", "ca"}, "needs --tls-cert"},
		{"jwt without upstream", []string{"--jwks-url", "https://x/jwks"}, "--upstream-url is not"},
		{"upstream without jwt", []string{"--upstream-url", "https://x"}, "no JWT key"},
		{"upstream bad url", []string{"--upstream-url", "x", "--jwt-hmac-secrets", "0123456789abcdef0123456789abcdef"}, "--upstream-url"},
		{"small body limit", []string{"--max-body-bytes", "10"}, "--max-body-bytes"},
		{"zero timeout", []string{"--read-header-timeout", "0s"}, "--read-header-timeout"},
		{"negative rate", []string{"--failed-token-rate", "-1"}, "must not be negative"},
		{"bad log level", []string{"--log-level", "loud"}, "--log-level"},
		{"positional arg", []string{"extra"}, "unexpected argument"},
		{"unknown flag", []string{"--nope"}, "not defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(tc.args, envMap(nil), &bytes.Buffer{})
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestAPIKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys")
	require.NoError(t, os.WriteFile(path, []byte("# rotated 2026-12\nfile-key-0123456789abcd\n\n  file-key-2-0123456789abcd  \n"), 0o600))
	keys, err := apiKeys(&config{APIKeys: []string{"flag-key-0123456789abcd"}, APIKeyFile: path})
	require.NoError(t, err)
	require.Equal(t, []string{"flag-key-0123456789abcd", "file-key-0123456789abcd", "file-key-2-0123456789abcd"}, keys)

	require.NoError(t, os.WriteFile(path, []byte("# nothing\n"), 0o600))
	_, err = apiKeys(&config{APIKeyFile: path})
	require.ErrorContains(t, err, "holds no key")

	require.NoError(t, os.WriteFile(path, []byte("tiny\n"), 0o600))
	_, err = apiKeys(&config{APIKeyFile: path})
	require.ErrorContains(t, err, "at least 16")
	require.NotContains(t, err.Error(), "tiny")

	_, err = apiKeys(&config{APIKeyFile: filepath.Join(dir, "missing")})
	require.Error(t, err)
}

func TestCurlExample(t *testing.T) {
	cfg := &config{}
	got := curlExample(cfg, "http://127.0.0.1:8080", false)
	require.Equal(t, `curl -sS -X POST http://127.0.0.1:8080/v1/sessions -H 'Content-Type: application/json' -d '{"userId":"alice","user":{"name":"Alice"}}'`, got)
	got = curlExample(cfg, "http://127.0.0.1:8080", true)
	require.Contains(t, got, `-H "Authorization: Bearer $API_KEY"`)
	require.False(t, strings.Contains(got, "key-"), "the banner never prints a key")
}
