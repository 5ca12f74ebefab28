// Package upstream is the HTTP client for the upstream API that owns users
// and tokens: it fetches the signed-in user's profile and refreshes access
// tokens. Start with New.
//
// Errors never contain tokens or response bodies (which may hold tokens):
// only operation names and HTTP status codes.
package upstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/sessiond/sessiond/store"
)

// Errors. Every error returned by Client wraps exactly one of them.
var (
	// ErrUnauthorized: the upstream refused the credential (401, 403, or for
	// Refresh 400 with "error":"invalid_grant"). The user must sign in again.
	ErrUnauthorized = errors.New("credential refused by upstream")
	// ErrUnavailable: the upstream could not answer usefully (network error,
	// timeout, 5xx, 429, any other unexpected status, an oversized or
	// malformed response). The credential may still be good: do not sign
	// the user out.
	ErrUnavailable = errors.New("upstream unavailable")
)

// Defaults for the zero values of Config.
const (
	DefaultUserInfoPath     = "/api/v1/users/me"
	DefaultRefreshPath      = "/api/v1/auth/refresh"
	DefaultUserIDField      = "id"
	DefaultTimeout          = 5 * time.Second
	DefaultMaxResponseBytes = 1 << 20
)

// Config configures a Client. Zero values mean the documented default.
type Config struct {
	// BaseURL of the upstream API, e.g. https://api.example.com. Required.
	BaseURL string
	// UserInfoPath is fetched with GET and "Authorization: Bearer <access
	// token>"; it must answer 200 with a JSON object holding UserIDField.
	// Default: "/api/v1/users/me".
	UserInfoPath string
	// RefreshPath receives the OAuth 2.0 refresh request (RFC 6749 section
	// 6): POST, application/x-www-form-urlencoded,
	// grant_type=refresh_token&refresh_token=<token>. Default:
	// "/api/v1/auth/refresh".
	RefreshPath string
	// UserIDField is the profile's field holding the user ID, a JSON string
	// or integer. Default: "id".
	UserIDField string
	// Timeout bounds each upstream call. Default: 5 s.
	Timeout time.Duration
	// MaxResponseBytes bounds a response body; larger answers are
	// ErrUnavailable. Default: 1 MiB.
	MaxResponseBytes int64
	// RefreshReuseWindow, when positive, keeps each successful refresh
	// result for that long, keyed by the SHA-256 of the old refresh token,
	// and hands it to later Refresh calls with the same old token. It covers
	// requests that carried the old token but arrived just after the shared
	// call finished, which an upstream that rotates refresh tokens would
	// refuse (signing the user out). Default: 0, off. Keep it short
	// (seconds): it extends the life of a used refresh token in memory.
	RefreshReuseWindow time.Duration
	// Coordinator, when set, shares each refresh among every process
	// using the same Coordinator (several sessiond instances on one
	// Redis): one upstream call per refresh token across all of them, its
	// result kept, encrypted with a key only the old refresh token
	// derives, for RefreshReuseWindow (default with a Coordinator:
	// DefaultSharedRefreshWindow). When the Coordinator cannot be reached,
	// Refresh fails with ErrUnavailable rather than risk spending a
	// rotating refresh token twice. Default: nil, per process only.
	Coordinator Coordinator
	// HTTPClient sends the requests. Default: a client with Timeout that
	// does not follow redirects (a 3xx is ErrUnavailable). Each call is
	// bounded by Timeout whatever the client's own timeout.
	HTTPClient *http.Client
}

// User is the profile returned by the user-info endpoint.
type User struct {
	// ID is UserIDField, as written by the upstream (an integer keeps every
	// digit).
	ID string
	// Profile is the whole response body, a valid JSON object.
	Profile json.RawMessage
}

// Tokens is the result of a refresh.
type Tokens struct {
	AccessToken string
	// RefreshToken may equal the old one if the upstream does not rotate
	// refresh tokens (it omitted refresh_token).
	RefreshToken string
	// ExpiresAt is when AccessToken expires, from expires_in; zero if the
	// upstream did not say.
	ExpiresAt time.Time
}

// Client talks to the upstream API. It is safe for concurrent use and owns
// no goroutines beyond the calls in flight.
type Client struct {
	userInfoURL string
	refreshURL  string
	idField     string
	timeout     time.Duration
	maxBytes    int64
	http        *http.Client
	group       singleflight.Group
	now         func() time.Time

	reuseWindow time.Duration
	reuseMu     sync.Mutex
	reuse       map[string]reusable // by hex SHA-256 of the old refresh token

	coord Coordinator // nil: refreshes are shared within this process only
}

// maxReusable bounds the refresh reuse cache; when full of live entries new
// results are simply not cached.
const maxReusable = 4096

type reusable struct {
	tokens Tokens
	until  time.Time
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.BaseURL == "" {
		return nil, errors.New("upstream: BaseURL is required")
	}
	base, err := url.Parse(cfg.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, errors.New("upstream: BaseURL must be an absolute http(s) URL")
	}
	if base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return nil, errors.New("upstream: BaseURL must not carry credentials, a query or a fragment")
	}
	c := &Client{
		idField:  cfg.UserIDField,
		timeout:  cfg.Timeout,
		maxBytes: cfg.MaxResponseBytes,
		http:     cfg.HTTPClient,
		now:      time.Now,

		reuseWindow: cfg.RefreshReuseWindow,
		coord:       cfg.Coordinator,
	}
	if c.reuseWindow > 0 {
		c.reuse = make(map[string]reusable)
	}
	if c.idField == "" {
		c.idField = DefaultUserIDField
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxResponseBytes
	}
	if c.http == nil {
		c.http = &http.Client{
			Timeout: c.timeout,
			// A redirect would carry the bearer or refresh token wherever
			// the upstream points; an API that owns tokens has no reason to
			// redirect, so a 3xx is answered as an unexpected status.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	userInfo, refresh := cfg.UserInfoPath, cfg.RefreshPath
	if userInfo == "" {
		userInfo = DefaultUserInfoPath
	}
	if refresh == "" {
		refresh = DefaultRefreshPath
	}
	if c.userInfoURL, err = join(base, userInfo); err != nil {
		return nil, fmt.Errorf("upstream: UserInfoPath: %w", err)
	}
	if c.refreshURL, err = join(base, refresh); err != nil {
		return nil, fmt.Errorf("upstream: RefreshPath: %w", err)
	}
	return c, nil
}

// join appends path (which may carry a query) to base's path.
func join(base *url.URL, path string) (string, error) {
	if !strings.HasPrefix(path, "/") {
		return "", errors.New("must start with /")
	}
	p, err := url.Parse(path)
	if err != nil || p.Scheme != "" || p.Host != "" {
		return "", errors.New("must be a path")
	}
	u := *base
	u.Path = strings.TrimSuffix(base.Path, "/") + p.Path
	u.RawPath = ""
	u.RawQuery = p.RawQuery
	return u.String(), nil
}

// FetchUser fetches the profile of the user owning accessToken.
func (c *Client) FetchUser(ctx context.Context, accessToken string) (*User, error) {
	if accessToken == "" || !headerSafe(accessToken) {
		return nil, fmt.Errorf("upstream: fetch user: %w: malformed access token", ErrUnauthorized)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.userInfoURL, nil)
	if err != nil {
		return nil, fmt.Errorf("upstream: fetch user: %w: build request", ErrUnavailable)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	status, body, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("upstream: fetch user: %w", err)
	}
	switch {
	case status == http.StatusOK:
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, fmt.Errorf("upstream: fetch user: %w: status %d", ErrUnauthorized, status)
	default:
		return nil, fmt.Errorf("upstream: fetch user: %w: status %d", ErrUnavailable, status)
	}
	u, err := c.parseUser(body)
	if err != nil {
		return nil, fmt.Errorf("upstream: fetch user: %w: %w", ErrUnavailable, err)
	}
	return u, nil
}

func (c *Client) parseUser(body []byte) (*User, error) {
	var fields map[string]json.RawMessage
	if err := decodeOne(body, &fields); err != nil || fields == nil {
		return nil, errors.New("response is not a JSON object")
	}
	raw, ok := fields[c.idField]
	if !ok {
		return nil, fmt.Errorf("response has no %q field", c.idField)
	}
	id, err := parseID(raw)
	if err != nil {
		return nil, fmt.Errorf("field %q: %w", c.idField, err)
	}
	if err := store.ValidateUserID(id); err != nil {
		return nil, fmt.Errorf("field %q is not a usable user ID", c.idField)
	}
	return &User{ID: id, Profile: json.RawMessage(body)}, nil
}

// parseID accepts a JSON string or integer, keeping an integer's digits
// exactly (no float64 round trip: 2^53+1 stays 9007199254740993).
func parseID(raw json.RawMessage) (string, error) {
	var v any
	if err := decodeOne(raw, &v); err != nil {
		return "", errors.New("not valid JSON")
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case json.Number:
		s := v.String()
		if !allDigits(strings.TrimPrefix(s, "-")) {
			return "", errors.New("number is not an integer")
		}
		return s, nil
	}
	return "", errors.New("must be a string or an integer")
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// decodeOne decodes exactly one JSON value with numbers kept as json.Number,
// refusing trailing data.
func decodeOne(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

// Refresh exchanges refreshToken for new tokens (OAuth 2.0 refresh_token
// grant, RFC 6749 section 6): POST RefreshPath with the form body
// grant_type=refresh_token&refresh_token=<token>. The JSON answer may use
// access_token/refresh_token/expires_in (seconds) or camelCase
// accessToken/refreshToken/expiresIn; access_token is required, a missing
// refresh_token means the old one stays valid.
//
// Concurrent calls with the same refresh token make one upstream call and
// share its result. The shared call is detached from any one caller's
// cancellation and bounded by Timeout; each caller stops waiting when its
// own ctx ends.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	if refreshToken == "" {
		return nil, fmt.Errorf("upstream: refresh: %w: empty refresh token", ErrUnauthorized)
	}
	if err := ctx.Err(); err != nil {
		// Starting a detached call nobody waits for could spend a rotating
		// refresh token and lose its successor.
		return nil, fmt.Errorf("upstream: refresh: %w: %w", ErrUnavailable, err)
	}
	sum := sha256.Sum256([]byte(refreshToken))
	key := hex.EncodeToString(sum[:])
	if t, ok := c.reused(key); ok {
		return t, nil
	}
	shared := context.WithoutCancel(ctx)
	ch := c.group.DoChan(key, func() (any, error) {
		t, err := c.coordinatedRefresh(shared, refreshToken)
		if err == nil {
			c.keep(key, t)
		}
		return t, err
	})
	if testHookRefreshWaiting != nil {
		testHookRefreshWaiting()
	}
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("upstream: refresh: %w: %w", ErrUnavailable, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		t := *r.Val.(*Tokens) // a copy per caller: no caller can alter another's result
		return &t, nil
	}
}

func (c *Client) reused(key string) (*Tokens, bool) {
	if c.reuse == nil {
		return nil, false
	}
	c.reuseMu.Lock()
	defer c.reuseMu.Unlock()
	e, ok := c.reuse[key]
	if !ok {
		return nil, false
	}
	if !c.now().Before(e.until) {
		delete(c.reuse, key)
		return nil, false
	}
	t := e.tokens
	return &t, true
}

func (c *Client) keep(key string, t *Tokens) {
	if c.reuse == nil {
		return
	}
	c.reuseMu.Lock()
	defer c.reuseMu.Unlock()
	now := c.now()
	if len(c.reuse) >= maxReusable {
		for k, e := range c.reuse {
			if !now.Before(e.until) {
				delete(c.reuse, k)
			}
		}
		if len(c.reuse) >= maxReusable {
			return
		}
	}
	c.reuse[key] = reusable{tokens: *t, until: now.Add(c.reuseWindow)}
}

// testHookRefreshWaiting, when set by a test, runs once a Refresh caller has
// joined the shared call, so tests can release the upstream only after every
// caller is waiting.
var testHookRefreshWaiting func()

func (c *Client) refresh(ctx context.Context, refreshToken string) (*Tokens, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.refreshURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("upstream: refresh: %w: build request", ErrUnavailable)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	status, body, err := c.do(req)
	if err != nil {
		return nil, fmt.Errorf("upstream: refresh: %w", err)
	}
	switch {
	case status == http.StatusOK:
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return nil, fmt.Errorf("upstream: refresh: %w: status %d", ErrUnauthorized, status)
	case status == http.StatusBadRequest && oauthError(body) == "invalid_grant":
		return nil, fmt.Errorf("upstream: refresh: %w: status 400 invalid_grant", ErrUnauthorized)
	default:
		return nil, fmt.Errorf("upstream: refresh: %w: status %d", ErrUnavailable, status)
	}
	t, err := c.parseTokens(body, refreshToken)
	if err != nil {
		return nil, fmt.Errorf("upstream: refresh: %w: %w", ErrUnavailable, err)
	}
	return t, nil
}

// oauthError returns the RFC 6749 5.2 "error" code of a response body, or "".
func oauthError(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error
}

// tokenResponse accepts both OAuth 2.0 snake_case and camelCase names.
type tokenResponse struct {
	AccessToken       string      `json:"access_token"`
	RefreshToken      string      `json:"refresh_token"`
	ExpiresIn         json.Number `json:"expires_in"`
	AccessTokenCamel  string      `json:"accessToken"`
	RefreshTokenCamel string      `json:"refreshToken"`
	ExpiresInCamel    json.Number `json:"expiresIn"`
}

func (c *Client) parseTokens(body []byte, oldRefresh string) (*Tokens, error) {
	var r tokenResponse
	var probe map[string]json.RawMessage
	if err := decodeOne(body, &probe); err != nil || probe == nil {
		return nil, errors.New("response is not a JSON object")
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, errors.New("response fields have the wrong types")
	}
	t := &Tokens{
		AccessToken:  firstNonEmpty(r.AccessToken, r.AccessTokenCamel),
		RefreshToken: firstNonEmpty(r.RefreshToken, r.RefreshTokenCamel, oldRefresh),
	}
	if t.AccessToken == "" {
		return nil, errors.New("response has no access_token")
	}
	if !headerSafe(t.AccessToken) || !headerSafe(t.RefreshToken) {
		return nil, errors.New("response tokens contain characters unusable in a header or cookie")
	}
	if exp := firstNonEmpty(string(r.ExpiresIn), string(r.ExpiresInCamel)); exp != "" {
		secs, err := strconv.ParseFloat(exp, 64)
		if err != nil || secs < 0 || secs > math.MaxInt32 {
			return nil, errors.New("expires_in is not a usable number of seconds")
		}
		t.ExpiresAt = c.now().Add(time.Duration(secs * float64(time.Second)))
	}
	return t, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// headerSafe reports whether a token can travel in an Authorization header
// or a cookie unchanged: printable ASCII without spaces, quotes, commas,
// semicolons or backslashes.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c >= 0x7f, c == '"', c == ',', c == ';', c == '\\':
			return false
		}
	}
	return true
}

// do sends req and reads at most maxBytes of the body. Transport failures,
// including timeouts and oversized bodies, wrap ErrUnavailable; the
// url.Error text is dropped because it quotes the URL and the cause only.
func (c *Client) do(req *http.Request) (int, []byte, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return 0, nil, fmt.Errorf("%w: timeout", ErrUnavailable)
		}
		if errors.Is(err, context.Canceled) {
			return 0, nil, fmt.Errorf("%w: %w", ErrUnavailable, context.Canceled)
		}
		return 0, nil, fmt.Errorf("%w: request failed", ErrUnavailable)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return 0, nil, fmt.Errorf("%w: timeout reading response", ErrUnavailable)
		}
		return 0, nil, fmt.Errorf("%w: reading response failed", ErrUnavailable)
	}
	if int64(len(body)) > c.maxBytes {
		return 0, nil, fmt.Errorf("%w: response too large (limit %d bytes)", ErrUnavailable, c.maxBytes)
	}
	return resp.StatusCode, body, nil
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
