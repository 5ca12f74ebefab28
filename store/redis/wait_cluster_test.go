package redis_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/redis"
)

// TestWaitReplicasCluster: on a cluster whose masters have a replica each,
// WaitReplicas runs WAIT on the master of the user's slot, so that a
// revocation is on that master's replica when the call returns; a
// revocation that meets a moved slot fails as unavailable, is not done,
// and succeeds when retried.
func TestWaitReplicasCluster(t *testing.T) {
	cl := redistest.StartClusterWithReplicas(t)
	ctx := context.Background()
	replicaOf := map[string]*goredis.Client{} // master address -> READONLY client of its replica
	for i, m := range cl.Nodes {
		o := cl.Replicas[i].Options()
		// A cluster replica answers reads of its slots only on a
		// READONLY connection; otherwise MOVED to its master.
		o.OnConnect = func(ctx context.Context, cn *goredis.Conn) error { return cn.ReadOnly(ctx).Err() }
		c := goredis.NewClient(o)
		t.Cleanup(func() { _ = c.Close() })
		role, err := c.Do(ctx, "ROLE").Slice()
		require.NoError(t, err)
		require.Equal(t, "slave", role[0], "Replicas[%d] is a replica", i)
		replicaOf[m.Addr()] = c
	}
	openStore := func(t *testing.T, timeout time.Duration) (*redis.Store, *goredis.ClusterClient) {
		client := cl.Client(t)
		s, err := redis.New(client, redis.Options{WaitReplicas: 1, WaitTimeout: timeout})
		require.NoError(t, err)
		return s, client
	}
	// onReplica counts which of keys the replica of addr has.
	onReplica := func(t *testing.T, addr string, keys ...string) int64 {
		t.Helper()
		n, err := replicaOf[addr].Exists(ctx, keys...).Result()
		require.NoError(t, err)
		return n
	}

	t.Run("Acknowledged", func(t *testing.T) {
		s, client := openStore(t, 2*time.Second)
		// One user per master, two sessions each.
		users := map[string]string{} // master address -> user ID
		for u := 0; len(users) < len(cl.Nodes); u++ {
			require.Less(t, u, 1000)
			uid := fmt.Sprintf("ack-%d", u)
			if addr := masterOf(t, client, uid); users[addr] == "" {
				users[addr] = uid
			}
		}
		for addr, uid := range users {
			a, b := waitSession(t, s, uid), waitSession(t, s, uid)
			keys := []string{sessionKey(a.ID), sessionKey(b.ID), userKey(uid)}
			// Creation does not wait: let the replica get the keys
			// first, or their absence below would prove nothing.
			require.Eventually(t, func() bool { return onReplica(t, addr, keys...) == 3 }, 5*time.Second, 10*time.Millisecond,
				"%s's keys on the replica of %s", uid, addr)

			require.NoError(t, s.Delete(ctx, a.ID))
			require.Zero(t, onReplica(t, addr, keys[0]), "right after Delete returns, the replica of %s has no %s", addr, keys[0])
			require.EqualValues(t, 2, onReplica(t, addr, keys[1:]...), "the user's other session is untouched")

			n, err := s.DeleteUser(ctx, uid)
			require.NoError(t, err)
			require.Equal(t, 1, n)
			require.Zero(t, onReplica(t, addr, keys...), "right after DeleteUser returns, the replica of %s has none of %s's keys", addr, uid)
		}
	})

	// Resharding: the store's cluster client still maps a slot to its old
	// master. Mid-migration the old master answers ASK, afterwards MOVED;
	// neither runs the script, so the revocation fails with ErrUnavailable
	// and is not done; a retry after the slot map's reload reaches the new
	// master and succeeds.
	t.Run("Resharding", func(t *testing.T) {
		s, client := openStore(t, 2*time.Second)
		src, dst := cl.Nodes[0], cl.Nodes[1]
		moved, asked := twoSlotsOn(t, client, src.Addr(), "move") // users on src, in two different slots
		movedSess, askedSess := waitSession(t, s, moved), waitSession(t, s, asked)

		// MOVED: the whole slot goes to dst behind the client's back.
		slot := slotOf(t, client, moved)
		startMigration(t, cl, slot, src, dst)
		finishMigration(t, cl, slot, dst)
		err := s.Delete(ctx, movedSess.ID)
		require.ErrorIs(t, err, store.ErrUnavailable)
		_, isMoved := goredis.IsMovedError(err)
		require.True(t, isMoved, "Delete on a moved slot: %v", err)
		require.EqualValues(t, 1, dst.Client(t).Exists(ctx, sessionKey(movedSess.ID)).Val(), "a failed Delete deleted nothing")
		// The failure asked for a reload of the slot map; the retry goes
		// to dst and its replica acknowledges.
		require.Eventually(t, func() bool { return s.Delete(ctx, movedSess.ID) == nil }, 5*time.Second, 50*time.Millisecond)
		require.Zero(t, dst.Client(t).Exists(ctx, sessionKey(movedSess.ID)).Val())
		require.Zero(t, onReplica(t, dst.Addr(), sessionKey(movedSess.ID)))

		// ASK: the slot is migrating and the session key has gone to dst.
		slot = slotOf(t, client, asked)
		startMigration(t, cl, slot, src, dst)
		_, err = s.DeleteUser(ctx, asked)
		require.ErrorIs(t, err, store.ErrUnavailable)
		_, isAsk := goredis.IsAskError(err)
		require.True(t, isAsk, "DeleteUser on a migrating slot: %v", err)
		askingExists := func(key string) int64 {
			// dst serves an importing slot only after ASKING, on the
			// same connection.
			conn := dst.Client(t).Conn()
			defer conn.Close()
			var n *goredis.IntCmd
			_, err := conn.Pipelined(ctx, func(p goredis.Pipeliner) error {
				p.Do(ctx, "ASKING")
				n = p.Exists(ctx, key)
				return nil
			})
			require.NoError(t, err)
			return n.Val()
		}
		require.EqualValues(t, 1, askingExists(sessionKey(askedSess.ID)), "a failed DeleteUser deleted nothing")
		finishMigration(t, cl, slot, dst)
		require.Eventually(t, func() bool {
			n, err := s.DeleteUser(ctx, asked)
			return err == nil && n == 1
		}, 5*time.Second, 50*time.Millisecond)
		require.Zero(t, dst.Client(t).Exists(ctx, sessionKey(askedSess.ID), userKey(asked)).Val())
		require.Zero(t, onReplica(t, dst.Addr(), sessionKey(askedSess.ID), userKey(asked)))
	})

	// The WAIT goes to the user's own master: with one master's replica
	// gone, revocations of that master's users fail (done, but not safe),
	// and those of another master's users still succeed.
	t.Run("ReplicaDown", func(t *testing.T) {
		s, client := openStore(t, 100*time.Millisecond)
		down, up := cl.Nodes[2], cl.Nodes[0]
		var downUser, upUser string
		for u := 0; downUser == "" || upUser == ""; u++ {
			require.Less(t, u, 1000)
			uid := fmt.Sprintf("down-%d", u)
			switch masterOf(t, client, uid) {
			case down.Addr():
				downUser = uid
			case up.Addr():
				upUser = uid
			}
		}
		d, u := waitSession(t, s, downUser), waitSession(t, s, upUser)
		require.NoError(t, cl.Replicas[2].Kill())

		err := s.Delete(ctx, d.ID)
		require.ErrorIs(t, err, store.ErrUnavailable)
		require.Contains(t, err.Error(), "0 of 1 replicas")
		_, err = s.Get(ctx, d.ID)
		require.ErrorIs(t, err, store.ErrNotFound, "the revocation is done on the master")
		require.NoError(t, s.Delete(ctx, u.ID), "a master whose replica is up")
	})
}

// masterOf returns the address of the master that serves userID's keys.
func masterOf(t *testing.T, client *goredis.ClusterClient, userID string) string {
	t.Helper()
	node, err := client.MasterForKey(context.Background(), "{"+store.UserTag(userID)+"}")
	require.NoError(t, err)
	return node.Options().Addr
}

func slotOf(t *testing.T, client *goredis.ClusterClient, userID string) int64 {
	t.Helper()
	slot, err := client.ClusterKeySlot(context.Background(), userKey(userID)).Result()
	require.NoError(t, err)
	return slot
}

func sessionKey(id string) string {
	return redis.DefaultKeyPrefix + "session:{" + id[:store.TagLen] + "}" + id[store.TagLen:]
}

func userKey(userID string) string {
	return redis.DefaultKeyPrefix + "user:{" + store.UserTag(userID) + "}:" + userID
}

// startMigration starts moving slot from src to dst, as redis-cli
// --cluster reshard does, and moves its keys: src then answers ASK for
// them.
func startMigration(t *testing.T, cl *redistest.Cluster, slot int64, src, dst *redistest.Server) {
	t.Helper()
	ctx := context.Background()
	srcC, dstC := src.Client(t), dst.Client(t)
	srcID, dstID := srcC.ClusterMyID(ctx).Val(), dstC.ClusterMyID(ctx).Val()
	require.NoError(t, dstC.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	require.NoError(t, srcC.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	keys, err := srcC.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	host, port, err := net.SplitHostPort(dst.Addr())
	require.NoError(t, err)
	args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
	for _, k := range keys {
		args = append(args, k)
	}
	require.NoError(t, srcC.Do(ctx, args...).Err())
}

// finishMigration gives slot to dst on every master.
func finishMigration(t *testing.T, cl *redistest.Cluster, slot int64, dst *redistest.Server) {
	t.Helper()
	ctx := context.Background()
	dstID := dst.Client(t).ClusterMyID(ctx).Val()
	for _, n := range append([]*redistest.Server{dst}, cl.Nodes...) {
		require.NoError(t, n.Client(t).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", dstID).Err())
	}
}

// twoSlotsOn returns two user IDs (prefix-0, prefix-1, ...) whose keys the
// cluster maps to the master at addr, in two different slots.
func twoSlotsOn(t *testing.T, client *goredis.ClusterClient, addr, prefix string) (string, string) {
	t.Helper()
	var first, second string
	for u := 0; first == "" || second == ""; u++ {
		require.Less(t, u, 1000, "no two slots of %s among 1000 users", addr)
		uid := fmt.Sprintf("%s-%d", prefix, u)
		if masterOf(t, client, uid) != addr {
			continue
		}
		if first == "" {
			first = uid
		} else if slotOf(t, client, uid) != slotOf(t, client, first) {
			second = uid
		}
	}
	return first, second
}

// BenchmarkDeleteWaitCluster is the cost of WaitReplicas on Redis Cluster:
// one revocation (Delete) at a time on a 3-master cluster with a replica
// each, without WAIT and with WAIT for 1 replica.
//
//	go test -run '^$' -bench DeleteWaitCluster -benchtime 500x ./store/redis/
func BenchmarkDeleteWaitCluster(b *testing.B) {
	cl := redistest.StartClusterWithReplicas(b)
	ctx := context.Background()
	for _, wait := range []int{0, 1} {
		b.Run(fmt.Sprintf("WaitReplicas=%d", wait), func(b *testing.B) {
			s, err := redis.New(cl.Client(b), redis.Options{KeyPrefix: redistest.Prefix(b), WaitReplicas: wait})
			require.NoError(b, err)
			ids := make([]string, b.N)
			for i := range ids {
				tok, err := store.NewToken(fmt.Sprint("bench-", i%64))
				require.NoError(b, err)
				ids[i], err = store.IDFromToken(tok)
				require.NoError(b, err)
				_, err = s.Create(ctx, &store.Session{ID: ids[i], UserID: fmt.Sprint("bench-", i%64), ExpiresAt: time.Now().Add(time.Hour)}, store.CreateOptions{})
				require.NoError(b, err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, id := range ids {
				if err := s.Delete(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
