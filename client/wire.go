package client

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/sessiond/sessiond/store"
)

// This file holds the JSON wire format of the sessiond API (/v1). The server
// (cmd/sessiond) encodes these same types, so the client and the server
// cannot drift apart; cmd/sessiond/openapi.yaml documents them for callers in
// other languages.

// Stable error codes of the API. A response with a status of 400 or more
// carries one of them in {"error":{"code":...}}; callers branch on the code,
// never on the message.
const (
	CodeInvalidRequest      = "invalid_request"      // 400: malformed JSON, missing or invalid field
	CodeUnauthorized        = "unauthorized"         // 401: missing or wrong API key (the caller itself)
	CodeInvalidToken        = "invalid_token"        // 401: the session/access/refresh token identifies no live session
	CodeNotFound            = "not_found"            // 404: no such session for this user, or no such route
	CodeTooLarge            = "too_large"            // 413: request body or a field over its limit
	CodeTooManySessions     = "too_many_sessions"    // 429: the user is at the session cap and the policy refuses
	CodeRateLimited         = "rate_limited"         // 429: too many failed token checks by this caller; see Retry-After
	CodeStoreUnavailable    = "store_unavailable"    // 503: the session store is down; the session may well exist
	CodeUpstreamUnavailable = "upstream_unavailable" // 503: the upstream user/token API is down
	CodeShuttingDown        = "shutting_down"        // 503 from /readyz only: the instance is draining
	CodeInternal            = "internal"             // 500: a bug; details are in sessiond's log
)

// Headers that may carry tokens instead of the JSON body. Tokens never
// travel in a URL: URLs end up in access logs and proxies' caches.
const (
	HeaderSessionToken = "X-Session-Token"
	HeaderAccessToken  = "X-Access-Token"
	HeaderRefreshToken = "X-Refresh-Token"
	// HeaderAPIKey is an alternative to "Authorization: Bearer <key>".
	HeaderAPIKey = "X-API-Key"
)

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the error inside ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Cookie is one cookie the caller must set on its response to the browser.
// Header is the complete Set-Cookie header value, ready to send as is; the
// other fields are the same cookie taken apart for callers that build
// cookies through a framework API.
type Cookie struct {
	Name     string    `json:"name"`
	Value    string    `json:"value"`
	Path     string    `json:"path,omitempty"`
	Domain   string    `json:"domain,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	MaxAge   int       `json:"maxAge"` // seconds; negative: delete the cookie now
	Secure   bool      `json:"secure"`
	HttpOnly bool      `json:"httpOnly"`
	SameSite string    `json:"sameSite,omitempty"` // "Lax", "Strict" or "None"
	Header   string    `json:"header"`
}

// CookieFromHTTP converts a cookie to its wire form.
func CookieFromHTTP(c *http.Cookie) Cookie {
	w := Cookie{
		Name: c.Name, Value: c.Value, Path: c.Path, Domain: c.Domain,
		Expires: c.Expires, MaxAge: c.MaxAge, Secure: c.Secure, HttpOnly: c.HttpOnly,
		Header: c.String(),
	}
	switch c.SameSite {
	case http.SameSiteLaxMode:
		w.SameSite = "Lax"
	case http.SameSiteStrictMode:
		w.SameSite = "Strict"
	case http.SameSiteNoneMode:
		w.SameSite = "None"
	}
	return w
}

// CookiesFromHTTP converts cookies to their wire form; never nil, so the
// JSON says [] rather than null.
func CookiesFromHTTP(cs []*http.Cookie) []Cookie {
	out := make([]Cookie, 0, len(cs))
	for _, c := range cs {
		out = append(out, CookieFromHTTP(c))
	}
	return out
}

// HTTP returns the cookie as an *http.Cookie, for a Go caller that sets it
// with http.SetCookie.
func (c Cookie) HTTP() *http.Cookie {
	h := &http.Cookie{
		Name: c.Name, Value: c.Value, Path: c.Path, Domain: c.Domain,
		Expires: c.Expires, MaxAge: c.MaxAge, Secure: c.Secure, HttpOnly: c.HttpOnly,
	}
	switch strings.ToLower(c.SameSite) {
	case "lax":
		h.SameSite = http.SameSiteLaxMode
	case "strict":
		h.SameSite = http.SameSiteStrictMode
	case "none":
		h.SameSite = http.SameSiteNoneMode
	}
	return h
}

// CreateRequest is the body of POST /v1/sessions (sign-in).
type CreateRequest struct {
	UserID string          `json:"userId"`
	User   json.RawMessage `json:"user,omitempty"` // the user's profile, any JSON; at most 64 KiB
	Device store.Device    `json:"device,omitzero"`
}

// CreateResponse answers POST /v1/sessions. Token is the new session token:
// the caller puts it in the browser's cookie (Cookies) and nowhere else.
type CreateResponse struct {
	Token   string         `json:"token"`
	Session *store.Session `json:"session"`
	Cookies []Cookie       `json:"cookies"`
}

// ResolveRequest is the body of POST /v1/sessions/resolve: whatever
// credentials the end user's request carried. Each may instead come in a
// header (HeaderSessionToken, HeaderAccessToken, HeaderRefreshToken).
type ResolveRequest struct {
	SessionToken string `json:"sessionToken,omitempty"`
	AccessToken  string `json:"accessToken,omitempty"`
	RefreshToken string `json:"refreshToken,omitempty"`
	// Device describes the end user's device; used when the chain creates a
	// session from an access or refresh token.
	Device store.Device `json:"device,omitzero"`
}

// Resolution answers POST /v1/sessions/resolve.
type Resolution struct {
	Session *store.Session `json:"session"`
	// Source says which credential produced the session: "session",
	// "jwt" (a new session from a valid access token) or "refresh".
	Source string `json:"source"`
	// Set only when the chain created a session or refreshed tokens.
	SessionToken string `json:"sessionToken,omitempty"`
	AccessToken  string `json:"accessToken,omitempty"`
	RefreshToken string `json:"refreshToken,omitempty"`
	// Extended: the expiry moved (sliding expiry); the cookie is re-sent.
	Extended bool `json:"extended"`
	// Cookies the caller must set on its response; empty when nothing
	// changed.
	Cookies []Cookie `json:"cookies"`
}

// TokenRequest is the body of the endpoints that act on one session token
// (lookup, touch, sign out). The token may come in HeaderSessionToken instead.
type TokenRequest struct {
	Token string `json:"token,omitempty"`
}

// SessionResponse answers POST /v1/sessions/lookup.
type SessionResponse struct {
	Session *store.Session `json:"session"`
}

// TouchResponse answers POST /v1/sessions/touch.
type TouchResponse struct {
	Session  *store.Session `json:"session"`
	Extended bool           `json:"extended"`
	Cookies  []Cookie       `json:"cookies"` // the session cookie when Extended, else empty
}

// SignOutResponse answers POST /v1/sessions/signout: the cookies that clear
// the browser's session (and token) cookies.
type SignOutResponse struct {
	// Revoked says whether a live session ended; false when the token
	// named none (signing out is idempotent).
	Revoked bool     `json:"revoked"`
	Cookies []Cookie `json:"cookies"`
}

// UpdateUserRequest is the body of PUT /v1/users/{userId}/profile.
type UpdateUserRequest struct {
	User json.RawMessage `json:"user"`
}

// UpdateUserResponse answers PUT /v1/users/{userId}/profile.
type UpdateUserResponse struct {
	Updated int `json:"updated"`
}

// SessionList answers GET /v1/users/{userId}/sessions. It never holds
// tokens: a session's ID is safe to show ("sign out that device").
type SessionList struct {
	Sessions []*store.Session `json:"sessions"`
}

// RevokeAllResponse answers DELETE /v1/users/{userId}/sessions.
type RevokeAllResponse struct {
	Revoked int `json:"revoked"`
}

// Status is the body of /healthz and of a ready /readyz.
type Status struct {
	Status string `json:"status"`
}
