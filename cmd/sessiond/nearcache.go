package main

import (
	"context"
	"log/slog"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/store/nearcache"
)

// nearCacheStartWait bounds how long the start waits for the near cache's
// invalidation channel.
const nearCacheStartWait = 2 * time.Second

// withNearCache puts the near cache (--redis-near-cache-ttl) in front of
// be's Redis store: resolves of hot sessions are answered from memory,
// and every instance on the same key prefix drops what another one
// revokes, extends or updates (Redis pub/sub). The TTL is the longest a
// lost invalidation can keep a revoked session alive on an instance. Off
// when the TTL is zero.
func withNearCache(be *backend, rc goredis.UniversalClient, cfg *config, log *slog.Logger) error {
	if cfg.RedisNearCacheTTL <= 0 {
		return nil
	}
	prefix := cfg.RedisKeyPrefix // empty: the store's default, as nearcache's
	nc, err := nearcache.New(be.store, rc, nearcache.Options{TTL: cfg.RedisNearCacheTTL, KeyPrefix: prefix, Logger: log})
	if err != nil {
		return err
	}
	be.store = nc
	// Stop the subscriber before the client closes under it.
	be.closers = append([]func() error{nc.Close}, be.closers...)
	// Until the subscription is confirmed every resolve goes to Redis,
	// which is safe but slow: give it a moment, so an instance that says
	// it is ready also caches. A Redis that is down does not hold the
	// start for long; the cache turns on when Redis is back.
	ctx, cancel := context.WithTimeout(context.Background(), nearCacheStartWait)
	defer cancel()
	live := nc.WaitReady(ctx) == nil
	log.Info("near cache on", "ttl", cfg.RedisNearCacheTTL.String(), "channel", nc.Channel(), "subscribed", live)
	return nil
}
