package manager_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/memory"
)

// The quickstart: a memory store, a Manager with the default (production)
// cookie settings, a sign-in handler and a page that needs a session.
func Example() {
	sessions := memory.New(memory.Options{}) // store/redis in production
	defer sessions.Close()
	m, err := manager.New(sessions, manager.Config{}) // 30-day sessions, extended daily
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		// Check the user's password first; then:
		_, err := m.SignIn(r.Context(), w, r, "user-42", json.RawMessage(`{"name":"Ada"}`), store.Device{})
		if err != nil {
			http.Error(w, "sign-in failed", http.StatusInternalServerError)
		}
	})
	mux.Handle("GET /me", m.RequireSession(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := m.GetServerSession(r) // cached for the request: no second store read
		fmt.Fprintf(w, "hello %s", s.UserID)
	})))
	app := m.Middleware(mux)

	// Sign in, then send the cookie back as a browser would.
	login := httptest.NewRecorder()
	app.ServeHTTP(login, httptest.NewRequest("POST", "/login", nil))
	cookie := login.Result().Cookies()[0]
	fmt.Println(cookie.Name, cookie.HttpOnly, cookie.Secure, cookie.MaxAge)

	req := httptest.NewRequest("GET", "/me", nil)
	req.AddCookie(cookie)
	me := httptest.NewRecorder()
	app.ServeHTTP(me, req)
	fmt.Println(me.Code, me.Body)
	// Output:
	// __Host-session-token true true 2592000
	// 200 hello user-42
}

// Resolve is the same logic without HTTP, for servers that get tokens
// some other way (sessiond's API, gRPC metadata, WebSocket handshakes).
func ExampleManager_Resolve() {
	sessions := memory.New(memory.Options{})
	defer sessions.Close()
	m, err := manager.New(sessions, manager.Config{})
	if err != nil {
		log.Fatal(err)
	}
	token, _, err := m.CreateSession(ctx, "user-42", nil, store.Device{Label: "CLI"})
	if err != nil {
		log.Fatal(err)
	}

	res, err := m.Resolve(ctx, manager.Credentials{SessionToken: token})
	fmt.Println(res.Session.UserID, res.Source, err)

	_, err = m.Resolve(ctx, manager.Credentials{SessionToken: "forged"})
	fmt.Println(errors.Is(err, manager.ErrNoSession))
	// Output:
	// user-42 session <nil>
	// true
}
