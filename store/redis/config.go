package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// ErrEvictionPolicy means a server may evict any key under memory pressure
// (maxmemory-policy allkeys-*): a user's index could vanish while the
// user's sessions live on, and DeleteUser would then miss them.
var ErrEvictionPolicy = errors.New("redis: maxmemory-policy may evict session keys")

// CheckConfig vets the server settings the store's guarantees depend on,
// on every master of a cluster. It returns an error wrapping
// ErrEvictionPolicy if maxmemory-policy is allkeys-* (volatile-* and
// noeviction are safe: every session key has a TTL, but so does the index,
// and noeviction never drops either). Callers decide whether to log it
// (warn) or stop (refuse).
//
// Managed Redis services often disable CONFIG: an error answer to CONFIG
// GET counts as "unknown" and CheckConfig returns nil. An unreachable
// server yields an error wrapping store.ErrUnavailable.
func (s *Store) CheckConfig(ctx context.Context) error {
	const op = "check config"
	var (
		mu   sync.Mutex
		bad  []string
		down error
	)
	check := func(ctx context.Context, c goredis.UniversalClient) error {
		res, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
		mu.Lock()
		defer mu.Unlock()
		var rerr goredis.Error
		switch {
		case errors.As(err, &rerr):
			// CONFIG disabled or renamed: unknown, not a failure.
		case err != nil:
			down = err
		case strings.HasPrefix(res["maxmemory-policy"], "allkeys-"):
			bad = append(bad, res["maxmemory-policy"])
		}
		return nil
	}
	if cc, ok := s.client.(*goredis.ClusterClient); ok {
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return check(ctx, c) })
	} else {
		_ = check(ctx, s.client)
	}
	if down != nil {
		return fail(op, down)
	}
	if len(bad) > 0 {
		return fmt.Errorf("redis: %s: %w: maxmemory-policy is %s; use noeviction or volatile-*", op, ErrEvictionPolicy, bad[0])
	}
	return nil
}
