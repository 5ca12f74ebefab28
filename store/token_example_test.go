package store_test

import (
	"fmt"

	"github.com/sessiond/sessiond/store"
)

func ExampleIDFromToken() {
	token, err := store.NewToken("user-42")
	if err != nil {
		panic(err)
	}
	id, err := store.IDFromToken(token)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(token), len(id), id[:store.TagLen] == store.UserTag("user-42"), store.ValidID(id))
	// Output: 46 47 true true
}
