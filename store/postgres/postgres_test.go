package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
		return newStore(t, Options{Now: now})
	})
}

// session returns a valid new session of userID expiring ttl after now.
func session(t testing.TB, userID string, now time.Time, ttl time.Duration) *store.Session {
	t.Helper()
	token, err := store.NewToken(userID)
	require.NoError(t, err)
	id, err := store.IDFromToken(token)
	require.NoError(t, err)
	return &store.Session{ID: id, UserID: userID, User: json.RawMessage(`{"id":"` + userID + `"}`), ExpiresAt: now.Add(ttl)}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	versions := func(t *testing.T, s *Store) []int {
		t.Helper()
		rs, err := s.pool.Query(ctx, "SELECT version FROM "+s.versions+" ORDER BY version")
		require.NoError(t, err)
		var out []int
		for rs.Next() {
			var v int
			require.NoError(t, rs.Scan(&v))
			out = append(out, v)
		}
		require.NoError(t, rs.Err())
		return out
	}
	ms, err := loadMigrations()
	require.NoError(t, err)
	require.NotEmpty(t, ms)
	var all []int
	for _, m := range ms {
		all = append(all, m.version)
	}

	t.Run("Twice", func(t *testing.T) {
		s := newStore(t, Options{}) // migrated once already
		sess := session(t, "alice", time.Now(), time.Hour)
		_, err := s.Create(ctx, sess, store.CreateOptions{})
		require.NoError(t, err)
		require.NoError(t, s.Migrate(ctx))
		require.Equal(t, all, versions(t, s), "versions after a second Migrate")
		_, err = s.Get(ctx, sess.ID)
		require.NoError(t, err, "a second Migrate lost a session")
	})

	t.Run("Concurrent", func(t *testing.T) {
		pool := testPool(t)
		schema := newSchema(t, pool)
		const instances = 6
		stores := make([]*Store, instances)
		for i := range stores {
			s, err := New(pool, Options{Schema: schema, CleanupInterval: -1})
			require.NoError(t, err)
			stores[i] = s
		}
		errs := make([]error, instances)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, s := range stores {
			wg.Go(func() {
				<-start
				errs[i] = s.Migrate(ctx)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "Migrate on instance %d", i)
		}
		require.Equal(t, all, versions(t, stores[0]))
		n, err := stores[0].Count(ctx, "alice")
		require.NoError(t, err)
		require.Zero(t, n)
	})

	t.Run("OwnTableNames", func(t *testing.T) {
		// Two stores in one schema under different table names keep apart.
		a := newStore(t, Options{})
		b, err := New(a.pool, Options{Schema: a.schema, Table: "web_sessions", CleanupInterval: -1})
		require.NoError(t, err)
		require.NoError(t, b.Migrate(ctx))
		_, err = a.Create(ctx, session(t, "alice", time.Now(), time.Hour), store.CreateOptions{})
		require.NoError(t, err)
		n, err := b.Count(ctx, "alice")
		require.NoError(t, err)
		require.Zero(t, n, "a session of the sessions table showed in web_sessions")
		require.Equal(t, all, versions(t, b))
	})

	t.Run("SearchPath", func(t *testing.T) {
		// Schema "" means the connection's search_path decides.
		schema := newSchema(t, testPool(t))
		cfg, err := pgxpool.ParseConfig(postgresURL())
		require.NoError(t, err)
		cfg.ConnConfig.RuntimeParams["search_path"] = schema
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		require.NoError(t, err)
		defer pool.Close()
		s, err := New(pool, Options{CleanupInterval: -1})
		require.NoError(t, err)
		require.NoError(t, s.Migrate(ctx))
		var found bool
		require.NoError(t, pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.tables
			WHERE table_schema = $1 AND table_name = 'sessions')`, schema).Scan(&found))
		require.True(t, found, "Migrate did not create the table in the search_path's schema")
	})
}

func TestCleanup(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock(time.Now())
	s := newStore(t, Options{Now: clk.Now, CleanupBatch: 100})
	var batches []int
	s.onCleanup = func(n int) { batches = append(batches, n) }

	// 2,500 rows that expire within the hour, inserted directly: Create
	// would make the test slow without testing anything more.
	const expired = 2500
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.table+` (id, user_id, created_at, updated_at, last_seen_at, expires_at)
		SELECT 'expired-' || g, 'user-' || (g % 50), $1, $1, $1, $1::timestamptz + g * interval '1 ms'
		FROM generate_series(1, $2::int) g`, clk.Now(), expired)
	require.NoError(t, err)
	var live []*store.Session
	for i := range 5 {
		sess := session(t, fmt.Sprintf("user-%d", i), clk.Now(), 2*time.Hour)
		_, err := s.Create(ctx, sess, store.CreateOptions{})
		require.NoError(t, err)
		live = append(live, sess)
	}

	n, err := s.Cleanup(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "Cleanup deleted rows that had not expired")
	require.Equal(t, expired+len(live), rows(t, s))

	clk.Advance(time.Hour)
	batches = nil
	n, err = s.Cleanup(ctx)
	require.NoError(t, err)
	require.Equal(t, expired, n)
	require.Len(t, batches, expired/100+1, "statements: %v", batches)
	for i, b := range batches {
		require.LessOrEqual(t, b, 100, "statement %d deleted more than a batch", i)
	}
	require.Equal(t, len(live), rows(t, s), "rows left after Cleanup")
	for _, sess := range live {
		_, err := s.Get(ctx, sess.ID)
		require.NoError(t, err, "Cleanup deleted a live session")
	}

	n, err = s.Cleanup(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "a second Cleanup")
}

func TestBackgroundCleanup(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	clk := storetest.NewClock(time.Now())
	s := newStore(t, Options{Now: clk.Now, CleanupInterval: 10 * time.Millisecond})
	sess := session(t, "alice", clk.Now(), time.Minute)
	_, err := s.Create(ctx, sess, store.CreateOptions{})
	require.NoError(t, err)
	clk.Advance(time.Minute)
	require.Eventually(t, func() bool { return rows(t, s) == 0 }, 10*time.Second, 10*time.Millisecond,
		"the background cleanup did not delete the expired row")
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "second Close")
	// The Store still serves calls after Close: it does not own the pool.
	_, err = s.Count(ctx, "alice")
	require.NoError(t, err)
}

func TestCloseWithoutCleanup(t *testing.T) {
	s, err := New(new(pgxpool.Pool), Options{CleanupInterval: -1})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
}

func TestRejectedCreateLeavesNoRow(t *testing.T) {
	ctx := context.Background()
	clk := storetest.NewClock(time.Now())
	s := newStore(t, Options{Now: clk.Now})
	a := session(t, "alice", clk.Now(), time.Hour)
	b := session(t, "alice", clk.Now(), 2*time.Hour)
	for _, sess := range []*store.Session{a, b} {
		_, err := s.Create(ctx, sess, store.CreateOptions{})
		require.NoError(t, err)
	}
	for name, c := range map[string]struct {
		sess func() *store.Session
		opts store.CreateOptions
		want error
	}{
		"BadJSON": {func() *store.Session {
			x := session(t, "alice", clk.Now(), time.Hour)
			x.User = json.RawMessage(`{"a":`)
			return x
		}, store.CreateOptions{MaxPerUser: 1}, store.ErrInvalid},
		"Refused": {func() *store.Session { return session(t, "alice", clk.Now(), time.Hour) },
			store.CreateOptions{MaxPerUser: 2, OnLimit: store.Refuse}, store.ErrTooManySessions},
		"ExistsWithEviction": {func() *store.Session {
			x := session(t, "alice", clk.Now(), 3*time.Hour)
			x.ID = b.ID
			return x
		}, store.CreateOptions{MaxPerUser: 1}, store.ErrExists},
		"UnknownPolicy": {func() *store.Session { return session(t, "alice", clk.Now(), time.Hour) },
			store.CreateOptions{MaxPerUser: 1, OnLimit: store.LimitPolicy(7)}, store.ErrInvalid},
	} {
		evicted, err := s.Create(ctx, c.sess(), c.opts)
		require.ErrorIs(t, err, c.want, name)
		require.Empty(t, evicted, name)
		require.Equal(t, 2, rows(t, s), "%s: rows after a rejected Create", name)
		for _, sess := range []*store.Session{a, b} {
			_, err := s.Get(ctx, sess.ID)
			require.NoError(t, err, "%s: a rejected Create removed a session", name)
		}
	}
}

// The user profile comes back byte for byte: jsonb would have reordered
// the keys, dropped the whitespace and the duplicate, and rewritten 1.0E2.
func TestUserStoredByteForByte(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	user := json.RawMessage("{ \"z\": 1.0E2,\n\t\"a\": [ ], \"a\": \"\\u00e9\", \"big\": 123456789012345678901234567890 }")
	sess := session(t, "alice", time.Now(), time.Hour)
	sess.User = user
	_, err := s.Create(ctx, sess, store.CreateOptions{})
	require.NoError(t, err)
	got, err := s.Get(ctx, sess.ID)
	require.NoError(t, err)
	require.Equal(t, string(user), string(got.User))

	updated := json.RawMessage(`{"b":2,  "a":1}`)
	n, err := s.UpdateUser(ctx, "alice", updated)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	got, err = s.Get(ctx, sess.ID)
	require.NoError(t, err)
	require.Equal(t, string(updated), string(got.User))
}

// Options.Now decides expiry, not the database's clock: a store whose clock
// is far from the server's still sees its sessions exactly as its clock says.
func TestClockGovernsExpiry(t *testing.T) {
	ctx := context.Background()
	for name, start := range map[string]time.Time{
		"Past":   time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC),
		"Future": time.Now().AddDate(50, 0, 0),
	} {
		t.Run(name, func(t *testing.T) {
			clk := storetest.NewClock(start)
			s := newStore(t, Options{Now: clk.Now})
			sess := session(t, "alice", clk.Now(), time.Hour)
			_, err := s.Create(ctx, sess, store.CreateOptions{})
			require.NoError(t, err)
			got, err := s.Get(ctx, sess.ID)
			require.NoError(t, err)
			require.True(t, got.ExpiresAt.Equal(start.Add(time.Hour).Truncate(time.Millisecond)))
			_, err = s.Touch(ctx, sess.ID, clk.Now(), clk.Now().Add(2*time.Hour))
			require.NoError(t, err)

			clk.Advance(2*time.Hour - time.Millisecond)
			n, err := s.Count(ctx, "alice")
			require.NoError(t, err)
			require.Equal(t, 1, n)
			n, err = s.Cleanup(ctx)
			require.NoError(t, err)
			require.Zero(t, n)

			clk.Advance(time.Millisecond)
			_, err = s.Get(ctx, sess.ID)
			require.ErrorIs(t, err, store.ErrNotFound)
			n, err = s.Cleanup(ctx)
			require.NoError(t, err)
			require.Equal(t, 1, n)
		})
	}
}

func TestUnavailable(t *testing.T) {
	ctx := context.Background()
	// Nothing listens on port 1: every call fails to connect.
	cfg, err := pgxpool.ParseConfig("postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	s, err := New(pool, Options{CleanupInterval: -1})
	require.NoError(t, err)
	sess := session(t, "alice", time.Now(), time.Hour)

	_, err = s.Create(ctx, sess, store.CreateOptions{})
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.True(t, strings.HasPrefix(err.Error(), "postgres: create session: "), "error %q", err)
	_, err = s.Get(ctx, sess.ID)
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.NotErrorIs(t, err, store.ErrNotFound, "an unreachable database is not a signed-out user")
	_, err = s.Count(ctx, "alice")
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.ErrorIs(t, s.Migrate(ctx), store.ErrUnavailable)
	require.ErrorIs(t, s.Ping(ctx), store.ErrUnavailable)
	_, err = s.Cleanup(ctx)
	require.ErrorIs(t, err, store.ErrUnavailable)
	// Bad input is reported as such, without a connection.
	_, err = s.Count(ctx, "")
	require.ErrorIs(t, err, store.ErrInvalid)
}

func TestNotMigrated(t *testing.T) {
	ctx := context.Background()
	pool := testPool(t)
	s, err := New(pool, Options{Schema: newSchema(t, pool), CleanupInterval: -1})
	require.NoError(t, err)
	_, err = s.Get(ctx, session(t, "alice", time.Now(), time.Hour).ID)
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.ErrorContains(t, err, "Migrate")

	err = s.Ping(ctx)
	require.ErrorIs(t, err, store.ErrUnavailable, "Ping before Migrate")
	require.ErrorContains(t, err, "Migrate")
	require.NoError(t, s.Migrate(ctx))
	require.NoError(t, s.Ping(ctx), "Ping after Migrate")

	// A schema an older release migrated: the version table lags.
	_, err = pool.Exec(ctx, "DELETE FROM "+s.versions+" WHERE version = (SELECT max(version) FROM "+s.versions+")")
	require.NoError(t, err)
	err = s.Ping(ctx)
	require.ErrorIs(t, err, store.ErrUnavailable, "Ping on an outdated schema")
	require.ErrorContains(t, err, "schema version")
}

func TestNewOptions(t *testing.T) {
	pool := new(pgxpool.Pool) // New does not touch the database
	_, err := New(nil, Options{})
	require.Error(t, err)
	for name, opts := range map[string]Options{
		"LongTable":      {Table: strings.Repeat("t", maxTableLen+1)},
		"LongSchema":     {Schema: strings.Repeat("s", maxIdentLen+1)},
		"NUL":            {Table: "ses\x00sions"},
		"NegativeBatch":  {CleanupBatch: -1},
		"NULInTheSchema": {Schema: "a\x00"},
	} {
		opts.CleanupInterval = -1
		_, err := New(pool, opts)
		require.Error(t, err, name)
	}
	s, err := New(pool, Options{CleanupInterval: -1})
	require.NoError(t, err)
	require.Equal(t, `"sessions"`, s.table)
	require.Equal(t, `"sessions_schema_migrations"`, s.versions)
	require.Equal(t, defaultCleanupBatch, s.batch)
	s, err = New(pool, Options{Schema: `we"ird`, Table: "t", CleanupInterval: -1})
	require.NoError(t, err)
	require.Equal(t, `"we""ird"."t"`, s.table)
	require.Contains(t, s.render("CREATE INDEX {{index:expires}} ON {{table}} (x)"), `"t_expires_idx" ON "we""ird"."t"`)
}
