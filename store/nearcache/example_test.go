package nearcache_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/nearcache"
	"github.com/sessiond/sessiond/store/redis"
)

// A near cache in front of the Redis store: hand it to manager.New in
// place of the store. Every instance built this way on the same Redis and
// key prefix drops what another one revokes.
func Example() {
	mr, _ := miniredis.Run() // a real Redis in production
	defer mr.Close()
	client := goredis.NewClient(&goredis.Options{Addr: mr.Addr()})
	defer client.Close()
	ctx := context.Background()

	backend, err := redis.New(client, redis.Options{})
	if err != nil {
		panic(err)
	}
	cache, err := nearcache.New(backend, client, nearcache.Options{TTL: 5 * time.Second})
	if err != nil {
		panic(err)
	}
	defer cache.Close()
	if err := cache.WaitReady(ctx); err != nil {
		panic(err)
	}

	token, _ := store.NewToken("alice")
	id, _ := store.IDFromToken(token)
	_, _ = cache.Create(ctx, &store.Session{ID: id, UserID: "alice", ExpiresAt: time.Now().Add(time.Hour)}, store.CreateOptions{})

	for range 3 {
		_, _ = cache.Get(ctx, id) // the first reads Redis, the others memory
	}
	fmt.Println("hits:", cache.Stats().Hits)

	_, _ = cache.DeleteUser(ctx, "alice") // published to every instance
	_, err = cache.Get(ctx, id)
	fmt.Println("after sign-out everywhere:", errors.Is(err, store.ErrNotFound))
	// Output:
	// hits: 2
	// after sign-out everywhere: true
}
