package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store/nearcache"
	"github.com/sessiond/sessiond/store/redis"
)

func TestNearCacheConfig(t *testing.T) {
	mr := miniredis.RunT(t)
	env := map[string]string{
		"SESSIOND_STORE":                "redis",
		"SESSIOND_REDIS_URL":            "redis://" + mr.Addr(),
		"SESSIOND_INSECURE_NO_AUTH":     "1",
		"SESSIOND_REDIS_NEAR_CACHE_TTL": "5s",
	}
	cfg, err := parseConfig(nil, envMap(env), &bytes.Buffer{})
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, cfg.RedisNearCacheTTL)

	be, err := openBackend(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	nc, ok := be.store.(*nearcache.Cache)
	require.True(t, ok, "store is %T, want the near cache", be.store)
	require.Equal(t, "sessiond:invalidate", nc.Channel())
	require.NoError(t, be.close())

	// Off by default: the Redis store itself.
	delete(env, "SESSIOND_REDIS_NEAR_CACHE_TTL")
	cfg, err = parseConfig(nil, envMap(env), &bytes.Buffer{})
	require.NoError(t, err)
	be, err = openBackend(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	_, ok = be.store.(*redis.Store)
	require.True(t, ok, "store is %T, want *redis.Store", be.store)
	require.NoError(t, be.close())
}

func TestNearCacheConfigRejected(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"negative", []string{"--store", "redis", "--redis-url", "redis://127.0.0.1:1", "--redis-near-cache-ttl=-1s"}, "--redis-near-cache-ttl must not be negative"},
		{"memory store", []string{"--redis-near-cache-ttl=5s"}, "--redis-near-cache-ttl needs --store redis"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(append(tc.args, "--insecure-no-auth"), envMap(nil), &bytes.Buffer{})
			require.ErrorContains(t, err, tc.want)
		})
	}
}
