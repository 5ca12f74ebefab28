package redis_test

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/manager/upstream"
	"github.com/sessiond/sessiond/store/redis"
)

var _ upstream.Coordinator = (*redis.Coordinator)(nil)

func TestCoordinator(t *testing.T) {
	m := miniredis.RunT(t)
	client := goredis.NewClient(&goredis.Options{Addr: m.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	c, err := redis.NewCoordinator(client, redis.Options{KeyPrefix: "app:"})
	require.NoError(t, err)
	ctx := context.Background()

	release, ok, err := c.TryLock(ctx, "lock:ab", time.Second)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, m.Exists("app:refresh:lock:ab"))
	_, ok, err = c.TryLock(ctx, "lock:ab", time.Second)
	require.NoError(t, err)
	require.False(t, ok, "a held lock was taken twice")

	// An expired lock taken by another is not released by its old holder.
	m.FastForward(2 * time.Second)
	_, ok, err = c.TryLock(ctx, "lock:ab", time.Second)
	require.NoError(t, err)
	require.True(t, ok, "an expired lock could not be taken")
	release(ctx)
	require.True(t, m.Exists("app:refresh:lock:ab"), "the old holder released its successor's lock")

	got, err := c.Load(ctx, "result:ab")
	require.NoError(t, err)
	require.Nil(t, got)
	require.NoError(t, c.Save(ctx, "result:ab", []byte{0, 1, 2}, 3*time.Second))
	got, err = c.Load(ctx, "result:ab")
	require.NoError(t, err)
	require.Equal(t, []byte{0, 1, 2}, got)
	require.Equal(t, 3*time.Second, m.TTL("app:refresh:result:ab"))
	m.FastForward(4 * time.Second)
	got, err = c.Load(ctx, "result:ab")
	require.NoError(t, err)
	require.Nil(t, got, "the result outlived its window")

	_, err = redis.NewCoordinator(client, redis.Options{KeyPrefix: "a{b}"})
	require.Error(t, err)
	m.Close()
	_, _, err = c.TryLock(ctx, "lock:cd", time.Second)
	require.Error(t, err, "an unreachable Redis must fail the lock, not grant it")
}
