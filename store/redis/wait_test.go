package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/redis"
)

func waitSession(t *testing.T, s *redis.Store, userID string) *store.Session {
	t.Helper()
	tok, err := store.NewToken(userID)
	require.NoError(t, err)
	id, err := store.IDFromToken(tok)
	require.NoError(t, err)
	sess := &store.Session{ID: id, UserID: userID, ExpiresAt: time.Now().Add(time.Hour)}
	_, err = s.Create(context.Background(), sess, store.CreateOptions{})
	require.NoError(t, err)
	return sess
}

// With WaitReplicas and a replica that acknowledges, revocations succeed
// and the replica has them by the time the call returns.
func TestWaitReplicasAcknowledged(t *testing.T) {
	sen := redistest.StartSentinel(t)
	s, err := redis.New(sen.Master.Client(t), redis.Options{WaitReplicas: 1, WaitTimeout: time.Second})
	require.NoError(t, err)
	ctx := context.Background()
	a, b := waitSession(t, s, "alice"), waitSession(t, s, "bob")

	require.NoError(t, s.Delete(ctx, a.ID))
	n, err := s.DeleteUser(ctx, "bob")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	keys, err := sen.Replica.Client(t).Keys(ctx, "*").Result()
	require.NoError(t, err)
	for _, k := range keys {
		require.NotContains(t, k, a.ID[store.TagLen:], "the replica still has the deleted session")
		require.NotContains(t, k, b.ID[store.TagLen:], "the replica still has bob's session")
	}
}

// Without enough replicas, a revocation is done on the master but fails
// with ErrUnavailable after WaitTimeout, so the caller does not tell the
// user "signed out" before it would survive a failover; a retry is
// harmless.
func TestWaitReplicasNotAcknowledged(t *testing.T) {
	t.Run("Standalone", func(t *testing.T) {
		srv := redistest.StartServer(t)
		checkNotAcknowledged(t, srv.Client(t), redis.DefaultKeyPrefix)
	})
	// On a cluster the master of the user's slot has no replica: the same.
	t.Run("Cluster", func(t *testing.T) {
		checkNotAcknowledged(t, redistest.SharedCluster(t).Client(t), redistest.Prefix(t))
	})
}

func checkNotAcknowledged(t *testing.T, client goredis.UniversalClient, prefix string) {
	s, err := redis.New(client, redis.Options{KeyPrefix: prefix, WaitReplicas: 1, WaitTimeout: 50 * time.Millisecond})
	require.NoError(t, err)
	ctx := context.Background()
	a := waitSession(t, s, "alice")
	waitSession(t, s, "bob")

	start := time.Now()
	err = s.Delete(ctx, a.ID)
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.Contains(t, err.Error(), "0 of 1 replicas")
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	_, err = s.Get(ctx, a.ID)
	require.ErrorIs(t, err, store.ErrNotFound, "the revocation is done on the master")
	require.ErrorIs(t, s.Delete(ctx, a.ID), store.ErrUnavailable, "a retry runs (and waits) again")

	_, err = s.DeleteUser(ctx, "bob")
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.Contains(t, err.Error(), "0 of 1 replicas")
	n, err := s.Count(ctx, "bob")
	require.NoError(t, err)
	require.Zero(t, n)
}

func TestWaitReplicasOptions(t *testing.T) {
	cluster := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	t.Cleanup(func() { _ = cluster.Close() })
	_, err := redis.New(cluster, redis.Options{WaitReplicas: 1})
	require.NoError(t, err, "WaitReplicas on a cluster")
	_, err = redis.New(cluster, redis.Options{})
	require.NoError(t, err)
	_, err = redis.New(cluster, redis.Options{WaitReplicas: -1})
	require.Error(t, err)

	plain := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = plain.Close() })
	_, err = redis.New(plain, redis.Options{WaitReplicas: -1})
	require.Error(t, err)
	_, err = redis.New(plain, redis.Options{WaitReplicas: 1, WaitTimeout: -time.Second})
	require.Error(t, err)
}
