package main

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/store"
)

func TestResolutionJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 4, 16, 30, 1, 123_000_000, time.UTC)
	zone := time.FixedZone("x", 5*3600+1800)
	sess := func(edit func(s *store.Session)) *store.Session {
		s := &store.Session{
			ID: "1a2bAbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcd", UserID: "alice",
			User:      json.RawMessage(`{"name":"Alice Example","roles":["a","b"],"n":1e3}`),
			Device:    store.Device{UserAgent: "Mozilla/5.0 (X11)", IP: "203.0.113.7", Label: "Work"},
			CreatedAt: at, UpdatedAt: at.Add(time.Second), LastSeenAt: at.Add(time.Minute), ExpiresAt: at.Add(time.Hour),
		}
		if edit != nil {
			edit(s)
		}
		return s
	}
	for _, tc := range []struct {
		name     string
		r        client.Resolution
		fastPath bool
	}{
		{"typical", client.Resolution{Session: sess(nil), Source: "session"}, true},
		{"extended, empty cookies", client.Resolution{Session: sess(nil), Source: "session", Extended: true, Cookies: []client.Cookie{}}, true},
		{"no user, no device", client.Resolution{Session: sess(func(s *store.Session) { s.User = nil; s.Device = store.Device{} }), Source: "session"}, true},
		{"only an IP", client.Resolution{Session: sess(func(s *store.Session) { s.Device = store.Device{IP: "::1"} }), Source: "session"}, true},
		{"user with whitespace", client.Resolution{Session: sess(func(s *store.Session) { s.User = json.RawMessage("{ \"a\" : [ 1 , \"x y\" ] ,\n\t\"b\":null }") }), Source: "session"}, true},
		{"local times", client.Resolution{Session: sess(func(s *store.Session) {
			s.CreatedAt, s.ExpiresAt = at.In(zone), at.Add(time.Nanosecond).In(time.Local)
		}), Source: "session"}, true},
		{"nil session", client.Resolution{Source: "session"}, true},
		{"html in user", client.Resolution{Session: sess(func(s *store.Session) { s.User = json.RawMessage(`{"b":"<b>&</b>"}`) }), Source: "session"}, false},
		{"unicode in user", client.Resolution{Session: sess(func(s *store.Session) { s.User = json.RawMessage(`{"n":"Zoë\u2028"}`) }), Source: "session"}, false},
		{"quote in user agent", client.Resolution{Session: sess(func(s *store.Session) { s.Device.UserAgent = `a "b" \ c` }), Source: "session"}, false},
		{"html in label", client.Resolution{Session: sess(func(s *store.Session) { s.Device.Label = "Tom & Jerry's <PC>" }), Source: "session"}, false},
		{"year 10000", client.Resolution{Session: sess(func(s *store.Session) { s.ExpiresAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }), Source: "session"}, false},
		{"tokens", client.Resolution{Session: sess(nil), Source: "jwt", SessionToken: "t", AccessToken: "a", RefreshToken: "r"}, false},
		{"cookies", client.Resolution{Session: sess(nil), Source: "session", Extended: true, Cookies: []client.Cookie{{Name: "session-token", Value: "v", Path: "/"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want bytes.Buffer
			wantErr := json.NewEncoder(&want).Encode(tc.r)
			var user bytes.Buffer
			got, ok := appendResolution(nil, &user, &tc.r)
			require.Equal(t, tc.fastPath, ok, "appendResolution fast path")
			if ok {
				require.NoError(t, wantErr)
				require.Equal(t, want.String(), string(got))
			}

			// Either way the answer on the wire is encoding/json's.
			rec := httptest.NewRecorder()
			writeResolution(rec, &tc.r)
			want.Reset()
			wrec := httptest.NewRecorder()
			writeJSON(wrec, 200, tc.r)
			require.Equal(t, wrec.Body.String(), rec.Body.String())
			require.Equal(t, wrec.Code, rec.Code)
			require.Equal(t, wrec.Header(), rec.Header())
		})
	}
}
