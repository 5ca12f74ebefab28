package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
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

// FuzzResolveBody: the hand parser of resolve requests accepts only what
// encoding/json accepts, with the same result; and compactPlain says
// "unchanged" only of valid JSON that Compact leaves as it is and that
// needs no HTML escaping.
func FuzzResolveBody(f *testing.F) {
	for _, s := range []string{
		`{"sessionToken":"abc"}`, ` { "accessToken" : "a.b.c" , "refreshToken":"r" } `,
		`{}`, ``, `null`, `{"sessionToken":"a","sessionToken":"b"}`, `{"SessionToken":"x"}`,
		`{"sessionToken":"a\"b"}`, `{"sessionToken":"a",}`, `{"sessionToken":"a"} {}`,
		`{"sessionToken":1}`, `{"device":{"ip":"::1"}}`, `{"sessionToken":"é"}`, `[`,
		`{"name":"Alice Example","roles":["a","b"],"n":1e3}`, `{ "a" : "x y" }`, `"<b>"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, slow client.ResolveRequest
		ok := parseResolve(b, &fast)
		err := decodeFrom(bytes.NewReader(b), &slow, true)
		if ok {
			require.NoError(t, err, "parseResolve accepted %q, encoding/json refused it", b)
			require.Equal(t, slow, fast, "parseResolve read %q differently", b)
		}
		if json.Valid(b) && compactPlain(b) {
			var c bytes.Buffer
			require.NoError(t, json.Compact(&c, b))
			require.Equal(t, string(b), c.String(), "compactPlain passed %q, which Compact changes", b)
			require.True(t, plainJSON(b), "compactPlain passed %q, which needs escaping", b)
		}
	})
}

func TestDecodeResolve(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       client.ResolveRequest
		wantErr    string
	}{
		{"session token", `{"sessionToken":"abc"}`, client.ResolveRequest{SessionToken: "abc"}, ""},
		{"spaces and two tokens", " {\n\"accessToken\" : \"a.b.c\",\t\"refreshToken\":\"r\" }\n", client.ResolveRequest{AccessToken: "a.b.c", RefreshToken: "r"}, ""},
		{"empty body", ``, client.ResolveRequest{}, ""},
		{"escaped token (encoding/json's path)", `{"sessionToken":"a\u0062c"}`, client.ResolveRequest{SessionToken: "abc"}, ""},
		{"device (encoding/json's path)", `{"sessionToken":"t","device":{"ip":"::1"}}`, client.ResolveRequest{SessionToken: "t", Device: store.Device{IP: "::1"}}, ""},
		{"unknown member", `{"sessionToken":"t","x":1}`, client.ResolveRequest{}, `unknown field "x"`},
		{"trailing comma", `{"sessionToken":"t",}`, client.ResolveRequest{}, "invalid character '}'"},
		{"data after the object", `{"sessionToken":"t"} {}`, client.ResolveRequest{}, "unexpected data after the JSON object"},
		{"not a string", `{"sessionToken":1}`, client.ResolveRequest{}, "cannot unmarshal number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/sessions/resolve", strings.NewReader(tc.body))
			var got client.ResolveRequest
			err := decodeResolve(r, &got)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			var direct client.ResolveRequest
			require.Equal(t, !strings.Contains(tc.name, "encoding/json's path"), parseResolve([]byte(tc.body), &direct) || tc.body == "",
				"which parser took %q", tc.body)
		})
	}
	t.Run("over the body limit", func(t *testing.T) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/v1/sessions/resolve", strings.NewReader(`{"sessionToken":"`+strings.Repeat("a", 100)+`"}`))
		r.Body = http.MaxBytesReader(w, r.Body, 64)
		var got client.ResolveRequest
		var mbe *http.MaxBytesError
		require.ErrorAs(t, decodeResolve(r, &got), &mbe)
		require.Equal(t, client.ResolveRequest{}, got)
	})
}
