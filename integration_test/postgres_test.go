package integration_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// defaultPostgresURL is the PostgreSQL of this machine and of CI (trust
// auth, database test); POSTGRES_URL points the test elsewhere.
const defaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// freshSchema creates a schema of the test's own, dropped at cleanup, and
// returns a connection URL whose search_path is that schema: sessiond has
// no schema setting, but the store uses the connection's search_path.
// Without a reachable server the test skips, except under CI=true.
func freshSchema(t *testing.T) string {
	t.Helper()
	base := os.Getenv("POSTGRES_URL")
	if base == "" {
		base = defaultPostgresURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required under CI=true: %v", err)
		}
		t.Skipf("PostgreSQL not reachable, skipping (start it or set POSTGRES_URL): %v", err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "sessiond_it_" + hex.EncodeToString(b[:])
	_, err = conn.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Two sessiond instances on one PostgreSQL database: a session created on
// one is resolved on the other, and revoke-all on the other ends it on
// both.
func TestPostgresAcrossInstances(t *testing.T) {
	dbURL := freshSchema(t)
	opts := sessiondtest.Options{
		APIKey: sessiondtest.APIKey,
		Args:   []string{"--store", "postgres", "--postgres-migrate"},
		Env:    []string{"SESSIOND_POSTGRES_URL=" + dbURL},
	}
	a := sessiondtest.Start(t, opts)
	b := sessiondtest.Start(t, opts)
	ctx := context.Background()

	s1, err := a.Client().CreateSession(ctx, client.CreateRequest{UserID: "dave"})
	require.NoError(t, err)
	s2, err := b.Client().CreateSession(ctx, client.CreateRequest{UserID: "dave"})
	require.NoError(t, err)

	res, err := b.Client().Resolve(ctx, client.ResolveRequest{SessionToken: s1.Token})
	require.NoError(t, err)
	require.Equal(t, s1.Session.ID, res.Session.ID)

	n, err := b.Client().RevokeUserSessions(ctx, "dave")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	for _, p := range []*sessiondtest.Process{a, b} {
		for _, tok := range []string{s1.Token, s2.Token} {
			_, err := p.Client().Resolve(ctx, client.ResolveRequest{SessionToken: tok})
			require.True(t, client.IsCode(err, client.CodeInvalidToken), "Resolve after revoke-all = %v, want invalid_token", err)
		}
	}
	require.Equal(t, 0, a.Stop())
	require.Equal(t, 0, b.Stop())
	requireNotLogged(t, []*sessiondtest.Process{a, b}, s1.Token, s2.Token, sessiondtest.APIKey)
}
