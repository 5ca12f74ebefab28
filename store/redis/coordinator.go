package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Coordinator is the shared storage several sessiond instances use to
// refresh one token only once between them (it implements
// manager/upstream.Coordinator): a lock (SET NX PX) and a short-lived
// value (SET PX) per opaque key, under "<prefix>refresh:". Values arrive
// encrypted; nothing here ever sees a token. Every command touches one
// key, so it works on Redis Cluster unchanged.
type Coordinator struct {
	client goredis.UniversalClient
	base   string
}

// NewCoordinator returns a Coordinator on client, with keys under
// opts.KeyPrefix (default DefaultKeyPrefix) like the Store's. Only
// KeyPrefix is used.
func NewCoordinator(client goredis.UniversalClient, opts Options) (*Coordinator, error) {
	if client == nil {
		return nil, errors.New("redis: new coordinator: nil client")
	}
	prefix, err := keyPrefix(opts)
	if err != nil {
		return nil, fmt.Errorf("redis: new coordinator: %w", err)
	}
	return &Coordinator{client: client, base: prefix + "refresh:"}, nil
}

// releaseScript deletes a lock only if it still holds the owner's random
// value: a holder whose lock expired must not release its successor's.
var releaseScript = goredis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// TryLock implements upstream.Coordinator with SET key owner NX PX ttl.
func (c *Coordinator) TryLock(ctx context.Context, key string, ttl time.Duration) (func(context.Context), bool, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, false, fmt.Errorf("redis: refresh lock: %w", err)
	}
	owner := hex.EncodeToString(b[:])
	k := c.base + key
	err := c.client.SetArgs(ctx, k, owner, goredis.SetArgs{Mode: "NX", TTL: ttl}).Err()
	switch {
	case errors.Is(err, goredis.Nil):
		return nil, false, nil // held by someone else
	case err != nil:
		return nil, false, fmt.Errorf("redis: refresh lock: %w", err)
	}
	release := func(ctx context.Context) {
		// Best effort: a lock that cannot be released expires by itself.
		_ = releaseScript.Run(ctx, c.client, []string{k}, owner).Err()
	}
	return release, true, nil
}

// Load implements upstream.Coordinator.
func (c *Coordinator) Load(ctx context.Context, key string) ([]byte, error) {
	b, err := c.client.Get(ctx, c.base+key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis: refresh result: %w", err)
	}
	return b, nil
}

// Save implements upstream.Coordinator.
func (c *Coordinator) Save(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := c.client.Set(ctx, c.base+key, value, ttl).Err(); err != nil {
		return fmt.Errorf("redis: save refresh result: %w", err)
	}
	return nil
}
