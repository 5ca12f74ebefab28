package integration_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// Fault scenario 5: Redis memory full (maxmemory 20mb).

// fillRedis writes filler values (outside sessiond's prefix). Without
// stopOnOOM (an evicting Redis) it writes limit values of 256 KiB. With
// stopOnOOM it writes until Redis refuses for lack of memory: 256 KiB
// values, then 64-byte ones, and it goes on after a pause as long as a
// small write still fits (Redis shrinks client buffers lazily, so memory
// can drop back under maxmemory just after the first refusal). It
// returns how many values it wrote.
func fillRedis(t *testing.T, rc *goredis.Client, limit int, stopOnOOM bool) int {
	t.Helper()
	ctx := context.Background()
	big := strings.Repeat("x", 256<<10)
	written := 0
	write := func(val string) error {
		err := rc.Set(ctx, fmt.Sprintf("filler:%d", written), val, 0).Err()
		if err == nil {
			written++
			return nil
		}
		require.True(t, stopOnOOM && goredis.IsOOMError(err), "filler write #%d: %v", written, err)
		return err
	}
	if !stopOnOOM {
		for range limit {
			require.NoError(t, write(big))
		}
		return written
	}
	for write(big) == nil {
		require.Less(t, written, limit, "Redis never ran out of memory")
	}
	for range 5 {
		for write("small") == nil {
			require.Less(t, written, 100*limit, "Redis never ran out of memory")
		}
		time.Sleep(300 * time.Millisecond)
		if write("small") != nil {
			return written // still full after the pause: full for good
		}
	}
	t.Fatalf("Redis kept accepting small writes after %d values", written)
	return written
}

// With noeviction, a full Redis refuses new sessions with a 503 that says
// why, while the sessions it holds still resolve and can still be signed
// out (deletes free memory; Redis allows them when full).
func TestFaultRedisMemoryFullNoEviction(t *testing.T) {
	rs := redistest.StartServer(t, "--maxmemory", "20mb", "--maxmemory-policy", "noeviction")
	p := sessiondtest.Start(t, sessiondtest.Options{APIKey: sessiondtest.APIKey, RedisURL: rs.URL()})
	c := p.Client()
	ctx := context.Background()
	created := createSessions(t, c, 100, 10)

	filled := fillRedis(t, rs.Client(t), 200, true)

	start := time.Now()
	_, err := c.CreateSession(ctx, client.CreateRequest{UserID: "latecomer"})
	took := time.Since(start)
	var ae *client.Error
	require.ErrorAs(t, err, &ae, "sign-in into a full Redis")
	require.Equal(t, http.StatusServiceUnavailable, ae.Status)
	require.Equal(t, client.CodeStoreUnavailable, ae.Code)
	require.Contains(t, ae.Message, "out of memory", "the 503 must say why, so the operator knows what to fix")
	waitFor(t, 5*time.Second, 10*time.Millisecond, "sessiond's log naming the cause (maxmemory)", func() bool { return p.Logged("maxmemory") })

	// Reads and sign-outs keep working on a full Redis.
	for i := range 50 {
		res, err := c.Resolve(ctx, client.ResolveRequest{SessionToken: created[i].Token})
		require.NoError(t, err, "resolve #%d on a full Redis", i)
		require.Equal(t, created[i].Session.ID, res.Session.ID)
	}
	for i := 50; i < 60; i++ {
		out, err := c.SignOut(ctx, created[i].Token)
		require.NoError(t, err, "sign-out #%d on a full Redis", i)
		require.True(t, out.Revoked)
		_, err = c.Resolve(ctx, client.ResolveRequest{SessionToken: created[i].Token})
		require.True(t, client.IsCode(err, client.CodeInvalidToken), "resolve after sign-out on a full Redis = %v", err)
	}
	n, err := c.RevokeUserSessions(ctx, "u1")
	require.NoError(t, err, "sign out everywhere on a full Redis")
	require.Positive(t, n)

	// Once memory is freed, sign-in works again without a restart.
	require.NoError(t, rs.Client(t).FlushDB(ctx).Err())
	_, err = c.CreateSession(ctx, client.CreateRequest{UserID: "latecomer"})
	require.NoError(t, err, "sign-in after memory was freed")
	t.Logf("REPORT memory noeviction: %d filler values filled 20mb; sign-in 503 in %v; 50/50 resolves and 10/10 sign-outs and revoke-all OK on the full Redis",
		filled, took.Round(time.Millisecond))
	requireNotLogged(t, []*sessiondtest.Process{p}, created[0].Token, sessiondtest.APIKey)
}

// With maxmemory-policy allkeys-*, Redis may evict any key: sessiond
// refuses to start by default and only warns when told to, and this test
// shows why: once a user's index is evicted while their sessions live on,
// "sign out everywhere" misses them.
func TestFaultRedisAllKeysEvictionPolicy(t *testing.T) {
	rs := redistest.StartServer(t, "--maxmemory", "20mb", "--maxmemory-policy", "allkeys-random")

	// By default sessiond refuses to start, naming the setting to fix.
	cmd := exec.Command(sessiondtest.Binary(t), "--listen", "127.0.0.1:0", "--store", "redis")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SESSIOND_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "SESSIOND_REDIS_URL="+rs.URL(), "SESSIOND_API_KEYS="+sessiondtest.APIKey)
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "sessiond must refuse an allkeys-* Redis by default:\n%s", out)
	require.Contains(t, string(out), "maxmemory-policy")
	require.Contains(t, string(out), "--redis-eviction-check warn")

	p := sessiondtest.Start(t, sessiondtest.Options{
		APIKey:   sessiondtest.APIKey,
		RedisURL: rs.URL(),
		Args:     []string{"--redis-eviction-check", "warn"},
	})
	require.True(t, p.Logged("evict"), "with --redis-eviction-check warn, sessiond warns at start")
	c := p.Client()
	ctx := context.Background()

	const users, perUser = 200, 3
	created := createSessions(t, c, users*perUser, users)
	rc := rs.Client(t)
	fillRedis(t, rc, 120, false) // 30 MB into 20 MB: Redis evicts at random
	evicted, err := rc.Info(ctx, "stats").Result()
	require.NoError(t, err)
	require.Contains(t, evicted, "evicted_keys:")

	// Find users whose index is gone while a session of theirs lives on.
	byUser := map[string][]*client.CreateResponse{}
	for _, s := range created {
		byUser[s.Session.UserID] = append(byUser[s.Session.UserID], s)
	}
	orphaned, missed := 0, 0
	for uid, ss := range byUser {
		live := 0
		for _, s := range ss {
			if _, err := c.Lookup(ctx, s.Token); err == nil {
				live++
			}
		}
		list, err := c.ListSessions(ctx, uid)
		require.NoError(t, err)
		if live == 0 || len(list) > 0 {
			continue
		}
		// Orphans: live sessions the index no longer knows.
		orphaned++
		_, err = c.RevokeUserSessions(ctx, uid)
		require.NoError(t, err)
		for _, s := range ss {
			if _, err := c.Lookup(ctx, s.Token); err == nil {
				missed++ // signed out everywhere, yet still signed in
			}
		}
	}
	t.Logf("REPORT memory allkeys-random: %d of %d users lost their index with sessions alive; sign-out-everywhere left %d sessions signed in",
		orphaned, users, missed)
	require.Positive(t, orphaned, "no index was evicted; the demonstration proves nothing")
	require.Positive(t, missed, "revoke-all missed no session")
}
