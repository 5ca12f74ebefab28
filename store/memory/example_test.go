package memory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/memory"
)

func ExampleNew() {
	ctx := context.Background()
	sessions := memory.New(memory.Options{})
	defer sessions.Close()

	// Sign in: the token goes into the cookie, the store keeps only its ID.
	token, err := store.NewToken("user-42")
	if err != nil {
		panic(err)
	}
	id, err := store.IDFromToken(token)
	if err != nil {
		panic(err)
	}
	_, err = sessions.Create(ctx, &store.Session{
		ID:        id,
		UserID:    "user-42",
		User:      []byte(`{"id":"user-42","name":"Ada"}`),
		Device:    store.Device{UserAgent: "curl/8.5.0", IP: "203.0.113.7"},
		ExpiresAt: time.Now().Add(30 * 24 * time.Hour),
	}, store.CreateOptions{MaxPerUser: 5})
	if err != nil {
		panic(err)
	}

	// A request comes back with the cookie.
	id, err = store.IDFromToken(token)
	if err != nil {
		panic(err) // a malformed cookie: signed out, no store call
	}
	s, err := sessions.Get(ctx, id)
	if err != nil {
		panic(err)
	}
	fmt.Println(s.UserID, string(s.User))

	// Sign out everywhere.
	n, err := sessions.DeleteUser(ctx, "user-42")
	if err != nil {
		panic(err)
	}
	fmt.Println("signed out of", n, "device(s)")
	// Output:
	// user-42 {"id":"user-42","name":"Ada"}
	// signed out of 1 device(s)
}
