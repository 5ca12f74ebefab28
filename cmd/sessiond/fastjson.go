package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/store"
)

// The resolve answer is the hot path of sessiond: every request of every
// app server asks for it. encoding/json spends a dozen allocations on it
// (an Encoder, each time's MarshalJSON, the interface boxing), so the
// common answer, a session found by its cookie, is written by hand into a
// pooled buffer, byte for byte what encoding/json's Encoder writes
// (TestResolutionJSONMatchesEncodingJSON proves it). Anything unusual (a
// character encoding/json would escape, tokens, cookies, a year past
// 9999) takes encoding/json itself.

var jsonBufs = sync.Pool{New: func() any { return new(jsonBuf) }}

// The resolve request is as hot, and nearly always one token in a flat
// object: {"sessionToken":"..."}. encoding/json's Decoder spends ~1.5 µs
// and 8 allocations on it. decodeResolve reads the body into a pooled
// buffer and parses that shape by hand; anything else (escapes, other
// keys, a key in another case, a device, null, bad JSON) goes to decode's
// own path on the same bytes, so the answer, errors included, is
// encoding/json's (FuzzResolveBody compares the two).

var bodyBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// decodeResolve is decode(r, req, true) for a resolve request.
func decodeResolve(r *http.Request, req *client.ResolveRequest) error {
	buf := bodyBufs.Get().(*bytes.Buffer)
	defer func() {
		if buf.Cap() <= 64<<10 { // a huge body's buffer is not kept
			buf.Reset()
			bodyBufs.Put(buf)
		}
	}()
	buf.Reset()
	if _, err := buf.ReadFrom(r.Body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return invalidRequest("request body: %v", err)
	}
	if parseResolve(buf.Bytes(), req) {
		return nil
	}
	*req = client.ResolveRequest{}
	return decodeFrom(bytes.NewReader(buf.Bytes()), req, true)
}

// parseResolve parses b into req if b is a JSON object of at most the three
// token members, each a string without escapes, and reports whether it
// did; it leaves anything else to encoding/json. A repeated member's last
// value wins, as in encoding/json.
func parseResolve(b []byte, req *client.ResolveRequest) bool {
	i := skipSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return skipSpace(b, i+1) == len(b)
	}
	for {
		key, j, ok := plainString(b, i)
		if !ok {
			return false
		}
		i = skipSpace(b, j)
		if i == len(b) || b[i] != ':' {
			return false
		}
		val, j, ok := plainString(b, skipSpace(b, i+1))
		if !ok {
			return false
		}
		switch string(key) {
		case "sessionToken":
			req.SessionToken = string(val)
		case "accessToken":
			req.AccessToken = string(val)
		case "refreshToken":
			req.RefreshToken = string(val)
		default:
			return false
		}
		i = skipSpace(b, j)
		switch {
		case i == len(b):
			return false
		case b[i] == ',':
			i = skipSpace(b, i+1)
		case b[i] == '}':
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

// plainString reads the JSON string at b[i:] if it holds only printable
// ASCII and no escape, returning its contents and the index after it.
func plainString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

type jsonBuf struct {
	out  []byte
	user bytes.Buffer // the compacted user JSON
}

// writeResolution answers r as writeJSON would.
func writeResolution(w http.ResponseWriter, r *client.Resolution) {
	jb := jsonBufs.Get().(*jsonBuf)
	defer jsonBufs.Put(jb)
	out, ok := appendResolution(jb.out[:0], &jb.user, r)
	if !ok {
		v := *r // escapes only on this path
		writeJSON(w, http.StatusOK, v)
		return
	}
	jb.out = out
	h := w.Header()
	h["Content-Type"] = headerJSON
	h["X-Content-Type-Options"] = headerNosniff
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out) // the client may be gone; nothing left to tell it
}

// Shared header values: net/http only reads them, and no handler appends
// to them in place (Header.Add would copy a full slice).
var (
	headerJSON    = []string{"application/json; charset=utf-8"}
	headerNosniff = []string{"nosniff"}
	headerNoStore = []string{"no-store"}
)

// appendResolution appends r as encoding/json's Encoder would (with its
// trailing newline), or reports false if r needs encoding/json itself.
func appendResolution(b []byte, user *bytes.Buffer, r *client.Resolution) ([]byte, bool) {
	if r.SessionToken != "" || r.AccessToken != "" || r.RefreshToken != "" || len(r.Cookies) != 0 || !plain(r.Source) {
		return b, false
	}
	b = append(b, `{"session":`...)
	if r.Session == nil {
		b = append(b, "null"...)
	} else {
		var ok bool
		if b, ok = appendSession(b, user, r.Session); !ok {
			return b, false
		}
	}
	b = append(b, `,"source":"`...)
	b = append(b, r.Source...)
	b = append(b, `","extended":`...)
	b = strconv.AppendBool(b, r.Extended)
	if r.Cookies == nil {
		b = append(b, `,"cookies":null}`...)
	} else {
		b = append(b, `,"cookies":[]}`...)
	}
	return append(b, '\n'), true
}

func appendSession(b []byte, user *bytes.Buffer, s *store.Session) ([]byte, bool) {
	d := s.Device
	if !plain(s.ID) || !plain(s.UserID) || !plain(d.UserAgent) || !plain(d.IP) || !plain(d.Label) {
		return b, false
	}
	b = append(b, `{"id":"`...)
	b = append(b, s.ID...)
	b = append(b, `","userId":"`...)
	b = append(b, s.UserID...)
	b = append(b, '"')
	if len(s.User) > 0 {
		// encoding/json compacts a RawMessage and HTML-escapes it. The
		// stored profile was checked to be valid JSON when it was written
		// (store.PrepareCreate, UpdateUser) and apps usually send it
		// compact, so one pass that finds nothing to change is enough;
		// Compact's full scan is ~5x slower.
		b = append(b, `,"user":`...)
		if compactPlain(s.User) {
			b = append(b, s.User...)
		} else {
			user.Reset()
			if err := json.Compact(user, s.User); err != nil || !plainJSON(user.Bytes()) {
				return b, false
			}
			b = append(b, user.Bytes()...)
		}
	}
	b = append(b, `,"device":{`...)
	sep := ""
	for _, f := range [...]struct{ name, v string }{{"userAgent", d.UserAgent}, {"ip", d.IP}, {"label", d.Label}} {
		if f.v == "" {
			continue
		}
		b = append(b, sep...)
		b = append(b, '"')
		b = append(b, f.name...)
		b = append(b, `":"`...)
		b = append(b, f.v...)
		b = append(b, '"')
		sep = ","
	}
	b = append(b, '}')
	for _, f := range [...]struct {
		name string
		t    time.Time
	}{{"createdAt", s.CreatedAt}, {"updatedAt", s.UpdatedAt}, {"lastSeenAt", s.LastSeenAt}, {"expiresAt", s.ExpiresAt}} {
		// time.Time.MarshalJSON refuses years outside [0, 9999].
		if y := f.t.Year(); y < 0 || y > 9999 {
			return b, false
		}
		b = append(b, `,"`...)
		b = append(b, f.name...)
		b = append(b, `":"`...)
		b = f.t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}'), true
}

// plain reports whether encoding/json writes s between quotes unchanged:
// printable ASCII without '"', '\\' or the HTML characters it escapes.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// compactPlain reports whether the valid JSON b is already what encoding/json
// writes for it as a RawMessage: no whitespace outside strings, so Compact
// would leave it as it is, and nothing plainJSON would refuse.
func compactPlain(b []byte) bool {
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case c >= 0x7f || c == '<' || c == '>' || c == '&':
			return false
		case escaped:
			escaped = false
		case inString:
			if c == '\\' {
				escaped = true
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return false
		}
	}
	return !inString
}

// plainJSON reports whether compacted JSON needs no HTML escaping (and
// holds no non-ASCII, which could include U+2028 or U+2029).
func plainJSON(b []byte) bool {
	for _, c := range b {
		if c >= 0x7f || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
