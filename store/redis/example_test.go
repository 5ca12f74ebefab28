package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/redis"
)

func ExampleNew() {
	ctx := context.Background()
	// An in-process fake keeps the example self-contained; in production
	// Addrs lists the server, the Sentinels (with MasterName) or the
	// cluster nodes, and NewUniversalClient picks the right client.
	fake, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer fake.Close()
	client := goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: []string{fake.Addr()}})
	defer client.Close() // the store does not own its client

	sessions, err := redis.New(client, redis.Options{KeyPrefix: "myapp:"})
	if err != nil {
		log.Fatal(err)
	}
	if err := sessions.CheckConfig(ctx); err != nil {
		log.Printf("warning: %v", err)
	}

	token, err := store.NewToken("alice") // goes into the cookie, never into the store
	if err != nil {
		log.Fatal(err)
	}
	id, err := store.IDFromToken(token)
	if err != nil {
		log.Fatal(err)
	}
	_, err = sessions.Create(ctx, &store.Session{
		ID:        id,
		UserID:    "alice",
		User:      json.RawMessage(`{"id":"alice","name":"Alice"}`),
		ExpiresAt: time.Now().Add(30 * 24 * time.Hour),
	}, store.CreateOptions{MaxPerUser: 10})
	if err != nil {
		log.Fatal(err)
	}

	s, err := sessions.Get(ctx, id)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(s.UserID, string(s.User))

	n, err := sessions.DeleteUser(ctx, "alice") // sign out everywhere
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed out sessions:", n)
	// Output:
	// alice {"id":"alice","name":"Alice"}
	// signed out sessions: 1
}
