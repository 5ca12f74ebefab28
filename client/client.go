// Package client is the Go client of the sessiond HTTP API (/v1): start
// with New, then call one typed method per endpoint. Errors from the API are
// *Error values carrying the API's stable code; test them with errors.As.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sessiond/sessiond/store"
)

// maxResponseBytes bounds what the client reads from one response, so a
// misbehaving server cannot exhaust the caller's memory. A full session list
// of a user at the store's limits stays well under it.
const maxResponseBytes = 32 << 20

// Client calls one sessiond deployment. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	apiKey string
	hc     *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey sends key as "Authorization: Bearer <key>" on every request.
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithHTTPClient makes the client use hc, for example one with a client
// certificate for mTLS or a custom timeout. Default: a client with a 10 s
// timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// New returns a client for the sessiond at baseURL (for example
// "http://127.0.0.1:8080").
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q must be http(s)://host[:port]", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: base URL %q must not have a query or fragment", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = strings.TrimSuffix(u.RawPath, "/")
	c := &Client{base: u, hc: &http.Client{Timeout: 10 * time.Second}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Error is an error answer of the API.
type Error struct {
	Status  int    // HTTP status
	Code    string // stable code, one of the Code* constants
	Message string // for humans; may change between versions
}

func (e *Error) Error() string {
	return fmt.Sprintf("sessiond: %d %s: %s", e.Status, e.Code, e.Message)
}

// IsCode reports whether err is an *Error with this code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// CreateSession signs a user in: it creates a session and returns its token
// and the cookie to set.
func (c *Client) CreateSession(ctx context.Context, req CreateRequest) (*CreateResponse, error) {
	var out CreateResponse
	if err := c.do(ctx, http.MethodPost, "/v1/sessions", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Resolve runs the full chain (session token, else access token, else
// refresh) and returns the session plus the cookies the caller must set.
func (c *Client) Resolve(ctx context.Context, req ResolveRequest) (*Resolution, error) {
	var out Resolution
	if err := c.do(ctx, http.MethodPost, "/v1/sessions/resolve", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Lookup returns the session of token without extending it.
func (c *Client) Lookup(ctx context.Context, token string) (*store.Session, error) {
	var out SessionResponse
	if err := c.do(ctx, http.MethodPost, "/v1/sessions/lookup", TokenRequest{Token: token}, &out); err != nil {
		return nil, err
	}
	return out.Session, nil
}

// Touch records activity on the session of token and applies sliding
// expiry; when Extended, the caller must re-send the cookie.
func (c *Client) Touch(ctx context.Context, token string) (*TouchResponse, error) {
	var out TouchResponse
	if err := c.do(ctx, http.MethodPost, "/v1/sessions/touch", TokenRequest{Token: token}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SignOut deletes the session of token and returns the cookies that clear
// the browser's cookies. Signing out an unknown (well-formed) token succeeds.
func (c *Client) SignOut(ctx context.Context, token string) (*SignOutResponse, error) {
	var out SignOutResponse
	if err := c.do(ctx, http.MethodPost, "/v1/sessions/signout", TokenRequest{Token: token}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateUser replaces the stored profile on every session of userID and
// returns how many sessions it updated.
func (c *Client) UpdateUser(ctx context.Context, userID string, user json.RawMessage) (int, error) {
	var out UpdateUserResponse
	if err := c.do(ctx, http.MethodPut, userPath(userID, "profile"), UpdateUserRequest{User: user}, &out); err != nil {
		return 0, err
	}
	return out.Updated, nil
}

// ListSessions returns userID's live sessions, oldest first; never tokens.
func (c *Client) ListSessions(ctx context.Context, userID string) ([]*store.Session, error) {
	var out SessionList
	if err := c.do(ctx, http.MethodGet, userPath(userID, "sessions"), nil, &out); err != nil {
		return nil, err
	}
	return out.Sessions, nil
}

// RevokeSession deletes one session of userID by its ID ("sign out that
// device"). It returns an *Error with CodeNotFound if userID has no such
// session.
func (c *Client) RevokeSession(ctx context.Context, userID, sessionID string) error {
	return c.do(ctx, http.MethodDelete, userPath(userID, "sessions")+"/"+url.PathEscape(sessionID), nil, nil)
}

// RevokeUserSessions deletes every session of userID ("sign out
// everywhere") and returns how many it deleted.
func (c *Client) RevokeUserSessions(ctx context.Context, userID string) (int, error) {
	var out RevokeAllResponse
	if err := c.do(ctx, http.MethodDelete, userPath(userID, "sessions"), nil, &out); err != nil {
		return 0, err
	}
	return out.Revoked, nil
}

// Healthz reports whether the process is alive.
func (c *Client) Healthz(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/healthz", nil, nil)
}

// Readyz reports whether the instance can serve: its store answers and it
// is not shutting down.
func (c *Client) Readyz(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil)
}

func userPath(userID, rest string) string {
	// PathEscape keeps a "/" inside a user ID from splitting the path.
	return "/v1/users/" + url.PathEscape(userID) + "/" + rest
}

// do sends one request. in, if not nil, is sent as JSON; out, if not nil,
// receives the JSON answer.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	// path is already escaped (see userPath); parsing the joined string
	// keeps "%2F" inside a user ID as it is.
	target := c.base.Scheme + "://" + c.base.Host + c.base.EscapedPath() + path
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// The URL holds no secret (tokens travel in bodies), so the
		// transport's error is safe to return as is.
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("client: %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error.Code == "" {
			eb.Error.Code = CodeInternal
			eb.Error.Message = fmt.Sprintf("unexpected %s response", resp.Status)
		}
		return &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: %s %s: decode response: %w", method, path, err)
	}
	return nil
}
