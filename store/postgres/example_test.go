package postgres_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/postgres"
)

// A service opens its pool, migrates once at startup (safe when several
// instances start together) and closes the store before the pool.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("SESSIOND_POSTGRES_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	sessions, err := postgres.New(pool, postgres.Options{Schema: "auth"})
	if err != nil {
		log.Fatal(err)
	}
	defer sessions.Close()
	if err := sessions.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	token, err := store.NewToken("user-42") // goes into the cookie only
	if err != nil {
		log.Fatal(err)
	}
	id, err := store.IDFromToken(token) // what the table stores
	if err != nil {
		log.Fatal(err)
	}
	_, err = sessions.Create(ctx, &store.Session{
		ID:        id,
		UserID:    "user-42",
		User:      []byte(`{"id":"user-42","name":"Ada"}`),
		ExpiresAt: time.Now().Add(30 * 24 * time.Hour),
	}, store.CreateOptions{MaxPerUser: 10})
	if err != nil {
		log.Fatal(err)
	}
}
