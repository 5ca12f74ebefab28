package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"

	"github.com/sessiond/sessiond/client"
)

// A Go app server signs a user in through sessiond, then resolves the
// browser's cookie on later requests. (Compiled, not run: it needs a
// sessiond at the address.)
func Example() {
	ctx := context.Background()
	sd, err := client.New("http://127.0.0.1:8080", client.WithAPIKey("the-api-key-from-SESSIOND_API_KEYS"))
	if err != nil {
		log.Fatal(err)
	}

	// After checking the user's password:
	created, err := sd.CreateSession(ctx, client.CreateRequest{
		UserID: "alice",
		User:   json.RawMessage(`{"name":"Alice"}`),
	})
	if err != nil {
		log.Fatal(err)
	}
	var w http.ResponseWriter // the app's response to the browser
	for _, c := range created.Cookies {
		http.SetCookie(w, c.HTTP())
	}

	// On a later request, with the cookie's value:
	res, err := sd.Resolve(ctx, client.ResolveRequest{SessionToken: created.Token})
	switch {
	case client.IsCode(err, client.CodeInvalidToken):
		fmt.Println("signed out")
	case err != nil:
		log.Fatal(err) // store_unavailable etc.: do not sign the user out
	default:
		fmt.Println("hello", res.Session.UserID)
	}
}
