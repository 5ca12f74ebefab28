package upstream_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/sessiond/sessiond/manager/upstream"
)

func Example() {
	// A stand-in for the app's API.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/users/me":
			_, _ = io.WriteString(w, `{"id":42,"name":"Ada"}`)
		case "/api/v1/auth/refresh":
			_, _ = io.WriteString(w, `{"access_token":"new-access","expires_in":900}`)
		}
	}))
	defer api.Close()

	c, err := upstream.New(upstream.Config{BaseURL: api.URL})
	if err != nil {
		panic(err)
	}
	u, err := c.FetchUser(context.Background(), "access-token")
	if err != nil {
		panic(err)
	}
	fmt.Println(u.ID, string(u.Profile))

	t, err := c.Refresh(context.Background(), "refresh-token")
	if err != nil {
		panic(err)
	}
	fmt.Println(t.AccessToken, t.RefreshToken)
	// Output:
	// 42 {"id":42,"name":"Ada"}
	// new-access refresh-token
}
