package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/memory"
)

// Fuzz target of the API's request decoding: any route, any path value,
// any body, any token header. Seeds (f.Add and testdata/fuzz) run as
// normal tests; fuzz with
// go test ./cmd/sessiond -run '^$' -fuzz FuzzAPIRequest.

// fuzzStore counts every call that reaches the store.
type fuzzStore struct {
	store.Store
	calls atomic.Int64
}

func (s *fuzzStore) Create(ctx context.Context, sess *store.Session, o store.CreateOptions) ([]string, error) {
	s.calls.Add(1)
	return s.Store.Create(ctx, sess, o)
}

func (s *fuzzStore) Get(ctx context.Context, id string) (*store.Session, error) {
	s.calls.Add(1)
	return s.Store.Get(ctx, id)
}

func (s *fuzzStore) Touch(ctx context.Context, id string, seen, exp time.Time) (*store.Session, error) {
	s.calls.Add(1)
	return s.Store.Touch(ctx, id, seen, exp)
}

func (s *fuzzStore) UpdateUser(ctx context.Context, uid string, u json.RawMessage) (int, error) {
	s.calls.Add(1)
	return s.Store.UpdateUser(ctx, uid, u)
}

func (s *fuzzStore) Delete(ctx context.Context, id string) error {
	s.calls.Add(1)
	return s.Store.Delete(ctx, id)
}

func (s *fuzzStore) List(ctx context.Context, uid string) ([]*store.Session, error) {
	s.calls.Add(1)
	return s.Store.List(ctx, uid)
}

func (s *fuzzStore) DeleteUser(ctx context.Context, uid string) (int, error) {
	s.calls.Add(1)
	return s.Store.DeleteUser(ctx, uid)
}

func (s *fuzzStore) Count(ctx context.Context, uid string) (int, error) {
	s.calls.Add(1)
	return s.Store.Count(ctx, uid)
}

const fuzzAPIKey = "fuzz-api-key-0123456789"

// FuzzAPIRequest: no input makes the API panic or answer 500; every answer
// is JSON; an input rejected as malformed (400) or oversize (413) never
// reaches the store; and no answer echoes the token sent in the header.
func FuzzAPIRequest(f *testing.F) {
	ms := memory.New(memory.Options{})
	f.Cleanup(func() { ms.Close() })
	st := &fuzzStore{Store: ms}
	env := newTestEnv(f, envOptions{
		keys: []string{fuzzAPIKey}, store: st, quiet: true, withJWT: true,
		maxBody: 4096, failRate: 1e9, failBurst: 1 << 30,
	})
	routes := env.api.routes()
	h := env.api.handler()

	live, _, err := env.mgr.CreateSession(context.Background(), "alice", nil, store.Device{})
	require.NoError(f, err)
	for _, s := range []struct {
		route       uint8
		user        string
		body, token string
	}{
		{0, "", `{"userId":"alice","user":{"name":"A"},"device":{"label":"x"}}`, ""},
		{0, "", `{"userId":"","user":null}`, ""},
		{0, "", `{"userId":"a","userID":"b"}`, ""},
		{0, "", `{"userId":"a"} {"userId":"b"}`, ""},
		{0, "", `{"userId":"a","user":` + strings.Repeat("[", 5000) + `}`, ""},
		{1, "", `{"sessionToken":"` + live + `"}`, ""},
		{1, "", `{"accessToken":"a.b.c","refreshToken":"r"}`, ""},
		{1, "", ``, live},
		{2, "", `{"token":"short"}`, ""},
		{3, "", `{"token":"` + live + `"}`, ""},
		{4, "", `{"token":1}`, strings.Repeat("A", store.TokenLen)},
		{5, "alice", `{"user":{"v":2}}`, ""},
		{5, "alice", `{"user":"not an object"}`, ""},
		{6, "alice", ``, ""},
		{7, "b%2Fob", ``, ""},
		{8, "alice", ``, ""},
		{8, "\x00\x01", `null`, ""},
		{1, "", "\xff\xfe", ""},
	} {
		f.Add(s.route, s.user, []byte(s.body), s.token)
	}

	var api []route
	for _, rt := range routes {
		if rt.auth {
			api = append(api, rt)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, user string, body []byte, token string) {
		rt := api[int(which)%len(api)]
		path := strings.NewReplacer("{userId}", url.PathEscape(user), "{sessionId}", url.PathEscape(user)).Replace(rt.path)
		r := httptest.NewRequest(rt.method, path, strings.NewReader(string(body)))
		r.Header.Set("Authorization", "Bearer "+fuzzAPIKey)
		r.Header.Set("Content-Type", "application/json")
		if token != "" && !strings.ContainsAny(token, "\r\n\x00") {
			r.Header.Set(client.HeaderSessionToken, token)
		}
		before := st.calls.Load()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)

		require.NotEqual(t, http.StatusInternalServerError, w.Code, "%s %s answered 500: %s", rt.method, rt.path, w.Body)
		// 204 has no body; a 3xx is net/http's ServeMux cleaning a path
		// such as /v1/users//sessions (an empty user ID), before the API.
		if w.Code != http.StatusNoContent && (w.Code < 300 || w.Code > 399) {
			require.True(t, json.Valid(w.Body.Bytes()), "%s %s answered non-JSON: %q", rt.method, rt.path, w.Body)
		}
		if w.Code == http.StatusBadRequest || w.Code == http.StatusRequestEntityTooLarge {
			require.Equal(t, before, st.calls.Load(), "%s %s: input rejected with %d reached the store", rt.method, rt.path, w.Code)
		}
		if _, err := store.IDFromToken(token); err != nil && len(token) >= 16 {
			require.NotContains(t, w.Body.String(), token, "the answer echoes a malformed token")
		}
	})
}
