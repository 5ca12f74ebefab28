package client_test

// The client is tested against the real sessiond handler in
// cmd/sessiond (every method, every error code). These tests cover what a
// fake server shows better: the exact requests the client sends and how it
// reads answers that are not sessiond's.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
)

type recorded struct {
	method, escapedPath, auth, body, contentType string
}

// fakeServer answers every request with status and body, and records it.
func fakeServer(t *testing.T, status int, body string) (*httptest.Server, *[]recorded) {
	t.Helper()
	var reqs []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		reqs = append(reqs, recorded{r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization"), string(b), r.Header.Get("Content-Type")})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, &reqs
}

func TestNewValidatesBaseURL(t *testing.T) {
	for _, bad := range []string{"", "127.0.0.1:8080", "ftp://x", "http://", "http://x/?q=1", "http://x/#f", "http://x/%zz"} {
		_, err := client.New(bad)
		require.Error(t, err, "New(%q)", bad)
	}
	for _, good := range []string{"http://127.0.0.1:8080", "https://sessions.internal/", "http://x/prefix"} {
		_, err := client.New(good)
		require.NoError(t, err, "New(%q)", good)
	}
}

func TestRequestsCarryTokensInBodiesOnly(t *testing.T) {
	srv, reqs := fakeServer(t, 200, `{}`)
	c, err := client.New(srv.URL+"/base/", client.WithAPIKey("the-api-key-0123456789"))
	require.NoError(t, err)
	ctx := context.Background()
	const token = "TOKEN-SHOULD-ONLY-BE-IN-THE-BODY"

	_, err = c.Lookup(ctx, token)
	require.NoError(t, err)
	_, err = c.Touch(ctx, token)
	require.NoError(t, err)
	_, err = c.SignOut(ctx, token)
	require.NoError(t, err)
	_, err = c.Resolve(ctx, client.ResolveRequest{SessionToken: token, RefreshToken: token})
	require.NoError(t, err)
	_, err = c.ListSessions(ctx, "org/1 é")
	require.NoError(t, err)
	_, err = c.UpdateUser(ctx, "u", json.RawMessage(`{"a":1}`))
	require.NoError(t, err)
	require.NoError(t, c.RevokeSession(ctx, "a/b", "sid"))
	_, err = c.RevokeUserSessions(ctx, "u")
	require.NoError(t, err)

	want := []struct{ method, path string }{
		{"POST", "/base/v1/sessions/lookup"},
		{"POST", "/base/v1/sessions/touch"},
		{"POST", "/base/v1/sessions/signout"},
		{"POST", "/base/v1/sessions/resolve"},
		{"GET", "/base/v1/users/org%2F1%20%C3%A9/sessions"},
		{"PUT", "/base/v1/users/u/profile"},
		{"DELETE", "/base/v1/users/a%2Fb/sessions/sid"},
		{"DELETE", "/base/v1/users/u/sessions"},
	}
	require.Len(t, *reqs, len(want))
	for i, r := range *reqs {
		require.Equal(t, want[i].method, r.method, "request %d", i)
		require.Equal(t, want[i].path, r.escapedPath, "request %d", i)
		require.Equal(t, "Bearer the-api-key-0123456789", r.auth, "request %d", i)
		require.NotContains(t, r.escapedPath, token)
		if i < 4 {
			require.Contains(t, r.body, token, "request %d sends the token in its body", i)
			require.Equal(t, "application/json", r.contentType)
		}
	}
	require.JSONEq(t, `{"user":{"a":1}}`, (*reqs)[5].body)
}

func TestTypedErrors(t *testing.T) {
	srv, _ := fakeServer(t, 401, `{"error":{"code":"invalid_token","message":"no session"}}`)
	c, err := client.New(srv.URL)
	require.NoError(t, err)
	_, err = c.Lookup(context.Background(), "x")
	var ce *client.Error
	require.True(t, errors.As(err, &ce))
	require.Equal(t, &client.Error{Status: 401, Code: client.CodeInvalidToken, Message: "no session"}, ce)
	require.True(t, client.IsCode(err, client.CodeInvalidToken))
	require.False(t, client.IsCode(err, client.CodeNotFound))
	require.Contains(t, err.Error(), "invalid_token")

	// An answer that is not sessiond's (a proxy's HTML page) still gives a
	// typed error with the status.
	srv2, _ := fakeServer(t, 502, `<html>bad gateway</html>`)
	c2, err := client.New(srv2.URL)
	require.NoError(t, err)
	err = c2.Healthz(context.Background())
	require.True(t, errors.As(err, &ce))
	require.Equal(t, 502, ce.Status)
	require.Equal(t, client.CodeInternal, ce.Code)
	require.Contains(t, ce.Message, "502")

	// A success answer that is not JSON is an error, not a zero value.
	srv3, _ := fakeServer(t, 200, `not json`)
	c3, err := client.New(srv3.URL)
	require.NoError(t, err)
	_, err = c3.ListSessions(context.Background(), "u")
	require.ErrorContains(t, err, "decode response")
	require.False(t, errors.As(err, &ce))
}

func TestTransportErrorNamesNoToken(t *testing.T) {
	srv, _ := fakeServer(t, 200, `{}`)
	srv.Close() // nothing listens any more
	c, err := client.New(srv.URL)
	require.NoError(t, err)
	_, err = c.Lookup(context.Background(), "SECRET-TOKEN-VALUE")
	require.Error(t, err)
	require.False(t, strings.Contains(err.Error(), "SECRET-TOKEN-VALUE"))
}

func TestCookieRoundTrip(t *testing.T) {
	h := &http.Cookie{Name: "__Host-session-token", Value: "v", Path: "/", MaxAge: 60, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
	w := client.CookieFromHTTP(h)
	require.Equal(t, "Strict", w.SameSite)
	require.Equal(t, h.String(), w.Header)
	require.Equal(t, h.String(), w.HTTP().String())
	require.NotNil(t, client.CookiesFromHTTP(nil), "an empty list encodes as [], not null")
}
