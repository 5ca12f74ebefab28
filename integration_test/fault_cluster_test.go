package integration_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/store"
)

// Fault scenario 3: sessiond on a real 3-master Redis Cluster. The whole
// API works with no CROSSSLOT error (every multi-key script stays in one
// slot), and when a master without a replica dies, only the users whose
// keys live on it fail (503); everyone else keeps working, also after the
// cluster has declared the node failed.
func TestFaultClusterShardDown(t *testing.T) {
	cl := redistest.StartCluster(t)
	ctx := context.Background()
	// With the default cluster-require-full-coverage yes, Redis stops
	// serving every slot once a master is declared failed; an operator who
	// wants the other shards to keep serving sets it to no.
	for _, n := range cl.Nodes {
		require.NoError(t, n.Client(t).ConfigSet(ctx, "cluster-require-full-coverage", "no").Err())
	}
	const deadline = 2 * time.Second
	p := sessiondtest.Start(t, sessiondtest.Options{
		APIKey: sessiondtest.APIKey,
		Args: []string{"--store", "redis", "--redis-cluster-addrs", strings.Join(cl.Addrs(), ","),
			"--request-timeout", deadline.String(), "--failed-token-rate", "0"},
	})
	c := p.Client()

	// The full API, for users spread over every shard.
	const users = 30
	for u := range users {
		uid := fmt.Sprintf("api%d", u)
		a, err := c.CreateSession(ctx, client.CreateRequest{UserID: uid, User: json.RawMessage(`{"v":1}`)})
		require.NoError(t, err, "create %s", uid)
		b, err := c.CreateSession(ctx, client.CreateRequest{UserID: uid})
		require.NoError(t, err)
		res, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: a.Token})
		require.NoError(t, err)
		require.Equal(t, a.Session.ID, res.Session.ID)
		_, err = c.Lookup(ctx, b.Token)
		require.NoError(t, err)
		_, err = c.Touch(ctx, b.Token)
		require.NoError(t, err)
		n, err := c.UpdateUser(ctx, uid, json.RawMessage(`{"v":2}`))
		require.NoError(t, err)
		require.Equal(t, 2, n)
		list, err := c.ListSessions(ctx, uid)
		require.NoError(t, err)
		require.Len(t, list, 2)
		require.NoError(t, c.RevokeSession(ctx, uid, a.Session.ID))
		third, err := c.CreateSession(ctx, client.CreateRequest{UserID: uid})
		require.NoError(t, err)
		out, err := c.SignOut(ctx, third.Token)
		require.NoError(t, err)
		require.True(t, out.Revoked)
		n, err = c.RevokeUserSessions(ctx, uid)
		require.NoError(t, err)
		require.Equal(t, 1, n, "revoke-all of %s", uid)
		_, err = c.Resolve(ctx, client.ResolveRequest{SessionToken: b.Token})
		require.True(t, client.IsCode(err, client.CodeInvalidToken), "resolve after revoke-all = %v", err)
	}
	require.False(t, p.Logged("CROSSSLOT"), "a command crossed slots")

	// Which node holds each user's keys: the user's tag is the hash tag.
	slotOwner := map[int64]string{}
	slots, err := cl.Nodes[0].Client(t).ClusterSlots(ctx).Result()
	require.NoError(t, err)
	for _, r := range slots {
		for s := r.Start; s <= r.End; s++ {
			slotOwner[int64(s)] = r.Nodes[0].Addr
		}
	}
	victim := cl.Nodes[0].Addr()
	type userSession struct {
		uid, token string
		onVictim   bool
	}
	var sessions []userSession
	onVictim := 0
	for u := range 60 {
		uid := fmt.Sprintf("shard%d", u)
		cr, err := c.CreateSession(ctx, client.CreateRequest{UserID: uid})
		require.NoError(t, err)
		slot, err := cl.Nodes[0].Client(t).ClusterKeySlot(ctx, "{"+store.UserTag(uid)+"}").Result()
		require.NoError(t, err)
		us := userSession{uid: uid, token: cr.Token, onVictim: slotOwner[slot] == victim}
		if us.onVictim {
			onVictim++
		}
		sessions = append(sessions, us)
	}
	require.Positive(t, onVictim, "no user on the victim shard")
	require.Less(t, onVictim, len(sessions), "every user on the victim shard")

	require.NoError(t, cl.Nodes[0].Kill())
	killed := time.Now()
	check := func(phase string) (failedOthers, okVictim int, slowest time.Duration) {
		for _, us := range sessions {
			start := time.Now()
			_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: us.token})
			took := time.Since(start)
			slowest = max(slowest, took)
			if us.onVictim {
				if err == nil {
					okVictim++
					continue
				}
				require.True(t, client.IsCode(err, client.CodeStoreUnavailable), "%s: victim-shard user %s: %v", phase, us.uid, err)
				continue
			}
			if err != nil {
				failedOthers++
				t.Logf("%s: user %s on a live shard: %v", phase, us.uid, err)
				continue
			}
			// Writes on live shards work too.
			_, err = c.CreateSession(ctx, client.CreateRequest{UserID: us.uid})
			if err != nil {
				failedOthers++
				t.Logf("%s: create for %s on a live shard: %v", phase, us.uid, err)
			}
		}
		return failedOthers, okVictim, slowest
	}
	f1, v1, s1 := check("right after the kill")
	// Past cluster-node-timeout (5 s): the survivors have marked the node
	// failed.
	time.Sleep(time.Until(killed.Add(6 * time.Second)))
	f2, v2, s2 := check("after the node is declared failed")
	t.Logf("REPORT cluster: full API for %d users, no CROSSSLOT; one master of 3 killed (no replica): %d of %d users on it fail with 503, the other %d: %d failures right after the kill, %d after node timeout; victim-shard users served: %d right after the kill, %d after node timeout; slowest answer %v / %v (deadline %v)",
		users, onVictim, len(sessions), len(sessions)-onVictim, f1, f2, v1, v2,
		s1.Round(time.Millisecond), s2.Round(time.Millisecond), deadline)
	require.Zero(t, f1, "users on live shards failed right after the kill")
	require.Zero(t, f2, "users on live shards failed once the node was declared failed")
	require.Zero(t, v1+v2, "a user on the dead shard was served")
	require.Less(t, max(s1, s2), deadline+time.Second)
}

// Fault scenario 3 with a replica: the killed master's replica is
// promoted by the cluster itself, and the users of that shard are served
// again without restarting sessiond; the other shards never fail.
func TestFaultClusterFailoverWithReplica(t *testing.T) {
	cl := redistest.StartCluster(t)
	ctx := context.Background()
	// As in TestFaultClusterShardDown: with the default yes, every slot
	// answers CLUSTERDOWN between the node being declared failed and its
	// replica taking over (measured: 1 failed request of other shards).
	for _, n := range cl.Nodes {
		require.NoError(t, n.Client(t).ConfigSet(ctx, "cluster-require-full-coverage", "no").Err())
	}
	victim := cl.Nodes[0]
	// A replica of the first master joins the cluster.
	replica := redistest.StartServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "5000", "--cluster-require-full-coverage", "no")
	rc := replica.Client(t)
	vh, vp, _ := strings.Cut(victim.Addr(), ":")
	require.NoError(t, rc.ClusterMeet(ctx, vh, vp).Err())
	victimID, err := victim.Client(t).ClusterMyID(ctx).Result()
	require.NoError(t, err)
	waitFor(t, 20*time.Second, 50*time.Millisecond, "the replica meeting the cluster", func() bool {
		nodes, _ := rc.ClusterNodes(ctx).Result()
		return strings.Contains(nodes, victimID)
	})
	require.NoError(t, rc.ClusterReplicate(ctx, victimID).Err())
	waitFor(t, 20*time.Second, 50*time.Millisecond, "the replica in sync", func() bool {
		info, _ := rc.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})

	p := sessiondtest.Start(t, sessiondtest.Options{
		APIKey: sessiondtest.APIKey,
		Args: []string{"--store", "redis", "--redis-cluster-addrs", strings.Join(cl.Addrs(), ","),
			"--request-timeout", "2s", "--failed-token-rate", "0"},
	})
	c := p.Client()
	slotOwner := map[int64]string{}
	slots, err := cl.Nodes[1].Client(t).ClusterSlots(ctx).Result()
	require.NoError(t, err)
	for _, r := range slots {
		for s := r.Start; s <= r.End; s++ {
			slotOwner[int64(s)] = r.Nodes[0].Addr
		}
	}
	var victims, others []string // tokens
	for u := 0; len(victims) < 10 || len(others) < 10; u++ {
		require.Less(t, u, 1000)
		uid := fmt.Sprintf("fo%d", u)
		cr, err := c.CreateSession(ctx, client.CreateRequest{UserID: uid})
		require.NoError(t, err)
		slot, err := cl.Nodes[1].Client(t).ClusterKeySlot(ctx, "{"+store.UserTag(uid)+"}").Result()
		require.NoError(t, err)
		if slotOwner[slot] == victim.Addr() {
			victims = append(victims, cr.Token)
		} else {
			others = append(others, cr.Token)
		}
	}
	// Let the replica receive the last writes.
	waitFor(t, 5*time.Second, 20*time.Millisecond, "the replica caught up", func() bool {
		m, _ := victim.Client(t).Info(ctx, "replication").Result()
		r, _ := rc.Info(ctx, "replication").Result()
		off := func(info, key string) string {
			for line := range strings.Lines(info) {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+":"); ok {
					return v
				}
			}
			return "?"
		}
		return off(m, "master_repl_offset") == off(r, "master_repl_offset")
	})

	require.NoError(t, victim.Kill())
	killed := time.Now()
	otherFailures, victimFailures := 0, 0
	var resumed time.Duration
	for resumed == 0 {
		if time.Since(killed) > 40*time.Second {
			role, _ := rc.Do(ctx, "ROLE").Slice()
			nodes, _ := cl.Nodes[1].Client(t).ClusterNodes(ctx).Result()
			_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: victims[0]})
			t.Fatalf("the victim shard never came back: replica role %v; last error %v; cluster nodes:\n%s", role, err, nodes)
		}
		for _, tok := range others {
			if _, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: tok}); err != nil {
				otherFailures++
			}
		}
		ok := 0
		for _, tok := range victims {
			_, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: tok})
			switch {
			case err == nil:
				ok++
			case client.IsCode(err, client.CodeStoreUnavailable):
				victimFailures++
			default:
				t.Fatalf("victim-shard user during the failover: %v (a 401 would sign the user out)", err)
			}
		}
		if ok == len(victims) {
			resumed = time.Since(killed)
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	role, err := rc.Do(ctx, "ROLE").Slice()
	require.NoError(t, err)
	t.Logf("REPORT cluster failover: master with a replica killed; its shard's users served again %v after the kill (%d failed resolves, all 503), replica role now %v; other shards: %d failures; 0 of %d sessions of the shard lost",
		resumed.Round(time.Millisecond), victimFailures, role[0], otherFailures, len(victims))
	require.Equal(t, "master", role[0], "the replica was not promoted")
	require.Zero(t, otherFailures, "users of other shards failed")
}
