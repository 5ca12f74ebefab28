package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// defaultURL is the PostgreSQL this machine and CI run (trust auth, database
// test); POSTGRES_URL points the tests elsewhere.
const defaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.pool != nil {
		shared.pool.Close()
	}
	// Every goroutine the tests started, the pool's and each Store's
	// cleanup, must be gone once they are closed.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// shared is one pool for the whole test binary: tests isolate themselves
// by schema, not by connection, and connecting once keeps them fast.
var shared struct {
	once sync.Once
	pool *pgxpool.Pool
	err  error
}

func postgresURL() string {
	if u := os.Getenv("POSTGRES_URL"); u != "" {
		return u
	}
	return defaultURL
}

// testPool returns the shared pool. Without a reachable server the test is
// skipped, except under CI=true, where the server is part of the job.
func testPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	shared.once.Do(func() { shared.pool, shared.err = connect(postgresURL()) })
	if shared.err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("PostgreSQL is required under CI=true: %v", shared.err)
		}
		tb.Skipf("PostgreSQL not reachable, skipping (start it or set POSTGRES_URL): %v", shared.err)
	}
	return shared.pool
}

func connect(url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("POSTGRES_URL: %w", err)
	}
	cfg.MaxConns = 8
	cfg.ConnConfig.ConnectTimeout = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		// The error names host and port, never the URL's password.
		return nil, err
	}
	return pool, nil
}

// newSchema creates a schema of a random name that the test's cleanup
// drops, so that tests and concurrent runs never see each other's rows.
func newSchema(tb testing.TB, pool *pgxpool.Pool) string {
	tb.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "sessiond_test_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{name}.Sanitize()
	_, err := pool.Exec(context.Background(), "CREATE SCHEMA "+ident)
	require.NoError(tb, err)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA "+ident+" CASCADE"); err != nil {
			tb.Errorf("drop test schema %s: %v", name, err)
		}
	})
	return name
}

// newStore returns a migrated Store in a fresh schema. Its background
// cleanup is off unless opts ask for it, so tests decide when rows go.
func newStore(tb testing.TB, opts Options) *Store {
	tb.Helper()
	pool := testPool(tb)
	opts.Schema = newSchema(tb, pool)
	if opts.CleanupInterval == 0 {
		opts.CleanupInterval = -1
	}
	s, err := New(pool, opts)
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	require.NoError(tb, s.Migrate(context.Background()))
	return s
}

// rows counts every row of s's table, expired or not: what a reader of the
// contract cannot see, the table still shows.
func rows(tb testing.TB, s *Store) int {
	tb.Helper()
	var n int
	require.NoError(tb, s.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+s.table).Scan(&n))
	return n
}
