package main

import (
	"bytes"
	"encoding/json"
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
		// encoding/json compacts a RawMessage and HTML-escapes it.
		user.Reset()
		if err := json.Compact(user, s.User); err != nil || !plainJSON(user.Bytes()) {
			return b, false
		}
		b = append(b, `,"user":`...)
		b = append(b, user.Bytes()...)
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
