package redis_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/redis"
	"github.com/sessiond/sessiond/store/storetest"
)

// TestMain stops the shared cluster and then checks that no test left a
// goroutine behind (clients not closed, stores that start work of their
// own).
func TestMain(m *testing.M) {
	code := redistest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestStore runs the contract suite on every kind of Redis the store
// supports: miniredis, a real server, a real server behind Sentinel (a
// failover client) and a real 3-master cluster. Subtests on a real server
// share it and keep apart by key prefix.
func TestStore(t *testing.T) {
	t.Run("Miniredis", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
			client := goredis.NewClient(&goredis.Options{Addr: miniredis.RunT(t).Addr()})
			t.Cleanup(func() { _ = client.Close() })
			return newStore(t, client, redistest.Prefix(t), now)
		})
	})
	t.Run("Sentinel", func(t *testing.T) {
		sentinel := redistest.StartSentinel(t)
		storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
			return newStore(t, sentinel.Client(t), redistest.Prefix(t), now)
		})
	})
	// A server and a cluster, each also with Options.AutoPipelineGets: the
	// same contract with Gets batched (on a cluster, per master).
	for _, batched := range []bool{false, true} {
		suffix := ""
		if batched {
			suffix = "AutoPipelineGets"
		}
		t.Run("Standalone"+suffix, func(t *testing.T) {
			srv := redistest.Standalone(t)
			storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
				return storeWith(t, srv.Client(t), redis.Options{KeyPrefix: srv.Prefix(t), Now: now, AutoPipelineGets: batched})
			})
		})
		t.Run("Cluster"+suffix, func(t *testing.T) {
			c := redistest.SharedCluster(t)
			storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
				return storeWith(t, c.Client(t), redis.Options{KeyPrefix: redistest.Prefix(t), Now: now, AutoPipelineGets: batched})
			})
		})
	}
}

// newStore returns a store on client under a key prefix of the test's own.
func newStore(t *testing.T, client goredis.UniversalClient, prefix string, now func() time.Time) *redis.Store {
	t.Helper()
	return storeWith(t, client, redis.Options{KeyPrefix: prefix, Now: now})
}

// storeWith returns a store on client with opts.
func storeWith(t *testing.T, client goredis.UniversalClient, opts redis.Options) *redis.Store {
	t.Helper()
	s, err := redis.New(client, opts)
	require.NoError(t, err)
	return s
}
