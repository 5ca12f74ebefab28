// Package manager is the auth.js-style session logic for Go apps: sign-in
// with a session cookie, getServerSession with sliding expiry, JWT access
// tokens and refresh tokens from an upstream API, per-user session limits
// and "sign out everywhere", on any store.Store. Start with New and
// Middleware; Resolve is the same logic without HTTP.
package manager

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/sessiond/sessiond/manager/jwtverify"
	"github.com/sessiond/sessiond/manager/upstream"
	"github.com/sessiond/sessiond/store"
)

// Errors of the Manager. Test them with errors.Is.
var (
	// ErrNoSession: the credentials name no live session and none could be
	// made from them (absent, malformed, unknown, expired, revoked, a JWT
	// that fails verification, a refresh the upstream refused). HTTP 401.
	ErrNoSession = errors.New("no session")
	// ErrUnavailable: the store or the upstream could not answer, so the
	// credentials could not be checked; they may well be valid. HTTP 503,
	// and never a reason to clear cookies. The cause (store.ErrUnavailable,
	// upstream.ErrUnavailable, ...) is wrapped too.
	ErrUnavailable = errors.New("session backend unavailable")
)

// Source says which step of the resolve chain produced a session.
type Source int

const (
	// SourceSession: a session token found in the store.
	SourceSession Source = iota + 1
	// SourceAccessToken: a verified JWT access token; a session was
	// created (SessionToken is set), or the one this access token created
	// earlier was found (an API client sending only its bearer token).
	SourceAccessToken
	// SourceRefresh: a refresh token exchanged at the upstream; a session
	// was created.
	SourceRefresh
)

// String returns "session", "jwt" or "refresh".
func (s Source) String() string {
	switch s {
	case SourceSession:
		return "session"
	case SourceAccessToken:
		return "jwt"
	case SourceRefresh:
		return "refresh"
	}
	return ""
}

// Credentials are what a request presents to Resolve.
type Credentials struct {
	SessionToken string
	AccessToken  string // a JWT
	RefreshToken string
	// Device is stored with a session the chain creates.
	Device store.Device
}

// Resolution is the outcome of a successful Resolve.
type Resolution struct {
	Session *store.Session
	Source  Source
	// SessionToken is set only when the chain created a new session: the
	// caller must hand it to the client (Cookies holds its cookie).
	SessionToken string
	// AccessToken and RefreshToken are set only when the chain refreshed
	// them; the client must replace its old ones.
	AccessToken  string
	RefreshToken string
	// Extended reports that sliding expiry moved the session's expiry: the
	// session cookie must be sent again (it is in Cookies).
	Extended bool
	// Cookies are every Set-Cookie the caller must send; empty when
	// nothing changed. A response carrying them must not be cached
	// (Cache-Control: no-store).
	Cookies []*http.Cookie
}

// Manager runs sessions on a store. It is safe for concurrent use.
type Manager struct {
	st  store.Store
	cfg Config
	log *slog.Logger
	now func() time.Time

	sessionCookie, accessCookie, refreshCookie string

	// flights merges concurrent JWT and refresh steps for the same token:
	// one upstream call and one new session, shared by every caller.
	flights singleflight.Group
	// held keeps refreshed tokens whose session could not be created.
	held heldTokens
	// byAccess remembers the session each access token made.
	byAccess accessSessions
}

// New returns a Manager on st, or an error naming every invalid setting of
// cfg.
func New(st store.Store, cfg Config) (*Manager, error) {
	if st == nil {
		return nil, errors.New("manager: nil store")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Manager{
		st:            st,
		cfg:           cfg,
		log:           cfg.Logger,
		now:           cfg.Now,
		sessionCookie: cfg.cookieName(cfg.Cookie.Name),
		accessCookie:  cfg.cookieName(cfg.AccessTokenCookie),
		refreshCookie: cfg.cookieName(cfg.RefreshTokenCookie),
		held:          heldTokens{m: map[[sha256.Size]byte]heldEntry{}},
		byAccess:      accessSessions{m: map[[sha256.Size]byte]accessSession{}},
	}, nil
}

// Config returns the configuration in effect, defaults filled in. Its
// TrustedProxies is a copy: changing it does not change whom the Manager
// trusts.
func (m *Manager) Config() Config {
	c := m.cfg
	c.TrustedProxies = slices.Clone(c.TrustedProxies)
	return c
}

// Store returns the store the Manager runs on.
func (m *Manager) Store() store.Store { return m.st }

// noSession returns an error wrapping ErrNoSession that says why without
// quoting any credential.
func noSession(op, why string) error {
	return fmt.Errorf("manager: %s: %w: %s", op, ErrNoSession, why)
}

// storeErr classifies a store error: unknown sessions are ErrNoSession,
// bad input passes through, and everything else (a down backend, a
// timeout, an error the contract does not name) is ErrUnavailable, so that
// a failing store never reads as "signed out".
func storeErr(op string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return noSession(op, "session not found")
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrTooLarge),
		errors.Is(err, store.ErrTooManySessions), errors.Is(err, store.ErrExists),
		errors.Is(err, context.Canceled):
		return fmt.Errorf("manager: %s: %w", op, err)
	case errors.Is(err, ErrUnavailable):
		return err
	}
	return fmt.Errorf("manager: %s: %w: %w", op, ErrUnavailable, err)
}

// ctxErr classifies the end of the caller's context: a deadline means the
// backends were too slow (unavailable); a cancellation means the caller
// left and nobody needs an answer.
func ctxErr(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("manager: %s: %w: %w", op, ErrUnavailable, err)
	}
	return fmt.Errorf("manager: %s: %w", op, err)
}

// upstreamErr classifies an upstream error the same way.
func upstreamErr(op string, err error) error {
	switch {
	case errors.Is(err, upstream.ErrUnauthorized):
		return noSession(op, "upstream refused the token")
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("manager: %s: %w", op, err)
	}
	return fmt.Errorf("manager: %s: %w: %w", op, ErrUnavailable, err)
}

// Resolve finds the session the credentials stand for, in the order of the
// resolve chain:
//
//  1. SessionToken: the session in the store, its expiry slid forward when
//     UpdateAge has passed since the last extension.
//  2. Otherwise AccessToken, a JWT verified by Config.JWT: the user is
//     fetched from Config.Upstream (whose user ID must equal the token's)
//     and a new session is created.
//  3. Otherwise, if the access token is missing or correctly signed but
//     expired, RefreshToken: exchanged at the upstream for new tokens, then
//     as in 2.
//
// A malformed session token never reaches the store, and a JWT that fails
// verification writes nothing. Concurrent calls with the same access or
// refresh token share one upstream call and one new session.
//
// Errors wrap ErrNoSession (no session: 401) or ErrUnavailable (the store
// or upstream is down: 503); store input errors (such as
// store.ErrTooManySessions from a refused sign-in) pass through wrapped.
func (m *Manager) Resolve(ctx context.Context, c Credentials) (*Resolution, error) {
	return m.resolve(ctx, c, nil)
}

// resolve is Resolve; with r set, c.Device is taken from r once the chain
// gets past the session cookie, the only step that does not need it.
func (m *Manager) resolve(ctx context.Context, c Credentials, r *http.Request) (*Resolution, error) {
	if c.SessionToken != "" {
		s, extended, err := m.Touch(ctx, c.SessionToken)
		if err == nil {
			res := &Resolution{Session: s, Source: SourceSession, Extended: extended}
			if extended {
				res.Cookies = []*http.Cookie{m.SessionCookie(c.SessionToken, s.ExpiresAt)}
			}
			return res, nil
		}
		if !errors.Is(err, ErrNoSession) {
			return nil, err
		}
		// A stale session token does not hide valid tokens sent with it.
	}
	if c.AccessToken == "" && c.RefreshToken == "" {
		return nil, noSession("resolve", "no credentials")
	}
	if m.cfg.JWT == nil || m.cfg.Upstream == nil {
		return nil, noSession("resolve", "JWT and refresh steps are not configured")
	}
	if r != nil {
		c.Device = m.DeviceFromRequest(r)
	}
	if c.AccessToken != "" {
		claims, err := m.cfg.JWT.Verify(c.AccessToken)
		switch {
		case err == nil:
			return m.resolveAccessToken(ctx, c, claims)
		case errors.Is(err, jwtverify.ErrExpired) && !errors.Is(err, jwtverify.ErrInvalid):
			if c.RefreshToken == "" {
				return nil, noSession("resolve", "access token expired and no refresh token")
			}
		default:
			m.log.DebugContext(ctx, "manager: access token rejected", "err", err)
			return nil, noSession("resolve", "access token rejected")
		}
	}
	return m.resolveRefresh(ctx, c)
}

// flightResult is what one merged JWT or refresh step produced.
type flightResult struct {
	token     string
	session   *store.Session
	tokens    *upstream.Tokens // refresh only
	accessExp time.Time        // refresh only
}

// flightTimeout bounds a merged step, which runs detached from the
// cancellation of the caller that started it (others wait on it too).
const flightTimeout = 30 * time.Second

// flight runs fn once for all concurrent callers with the same kind and
// secret. The key is a hash: the secret itself is kept nowhere.
func (m *Manager) flight(ctx context.Context, kind, secret string, fn func(context.Context) (*flightResult, error)) (*flightResult, error) {
	sum := sha256.Sum256([]byte(secret))
	ch := m.flights.DoChan(kind+":"+string(sum[:]), func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flightTimeout)
		defer cancel()
		return fn(fctx)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*flightResult), nil
	case <-ctx.Done():
		return nil, ctxErr(kind, ctx.Err())
	}
}

func (m *Manager) resolveAccessToken(ctx context.Context, c Credentials, claims *jwtverify.Claims) (*Resolution, error) {
	// A client that sends only its bearer token (an API client without a
	// cookie jar) gets the session its token made before, not a new one
	// per request that would crowd out the user's other devices.
	if id, ok := m.byAccess.get(c.AccessToken, m.now()); ok {
		s, err := m.lookupID(ctx, "jwt", id)
		if err == nil && s.UserID == claims.UserID {
			if s, _, err = m.slideNow(ctx, s); err == nil {
				return &Resolution{Session: s, Source: SourceAccessToken}, nil
			}
		}
		if err != nil && !errors.Is(err, ErrNoSession) {
			return nil, err
		}
		m.byAccess.forget(c.AccessToken) // revoked or expired: make a new one
	}
	r, err := m.flight(ctx, "jwt", c.AccessToken, func(ctx context.Context) (*flightResult, error) {
		token, s, err := m.sessionFromAccessToken(ctx, "jwt", c.AccessToken, claims, c.Device, SourceAccessToken)
		if err != nil {
			return nil, err
		}
		m.byAccess.put(c.AccessToken, s.ID, claims.ExpiresAt, m.now())
		return &flightResult{token: token, session: s}, nil
	})
	if err != nil {
		return nil, err
	}
	return &Resolution{
		Session:      r.session.Clone(),
		Source:       SourceAccessToken,
		SessionToken: r.token,
		Cookies:      []*http.Cookie{m.SessionCookie(r.token, r.session.ExpiresAt)},
	}, nil
}

func (m *Manager) resolveRefresh(ctx context.Context, c Credentials) (*Resolution, error) {
	r, err := m.flight(ctx, "refresh", c.RefreshToken, func(ctx context.Context) (*flightResult, error) {
		toks, retry := m.held.take(c.RefreshToken, m.now())
		if !retry {
			var err error
			toks, err = m.cfg.Upstream.Refresh(ctx, c.RefreshToken)
			if err != nil {
				err = upstreamErr("refresh", err)
				if errors.Is(err, ErrNoSession) {
					m.log.DebugContext(ctx, "manager: upstream refused a refresh token")
				}
				return nil, err
			}
		}
		claims, err := m.cfg.JWT.Verify(toks.AccessToken)
		if err != nil {
			// The upstream issues tokens our verifier rejects: a
			// configuration mismatch (keys, issuer, audience) to fix.
			m.log.WarnContext(ctx, "manager: refreshed access token does not verify", "err", err)
			return nil, noSession("refresh", "refreshed access token does not verify")
		}
		if !retry {
			m.emit(ctx, hookRefreshed, Event{UserID: claims.UserID, Source: SourceRefresh, Device: c.Device})
		}
		token, s, err := m.sessionFromAccessToken(ctx, "refresh", toks.AccessToken, claims, c.Device, SourceRefresh)
		if err != nil {
			if errors.Is(err, ErrUnavailable) {
				// The upstream has rotated the refresh token the client
				// holds: without the new tokens the client would be
				// signed out by an outage. Keep them for its retry.
				m.held.put(c.RefreshToken, toks, m.now())
			}
			return nil, err
		}
		m.byAccess.put(toks.AccessToken, s.ID, claims.ExpiresAt, m.now())
		return &flightResult{token: token, session: s, tokens: toks, accessExp: claims.ExpiresAt}, nil
	})
	if err != nil {
		return nil, err
	}
	res := &Resolution{
		Session:      r.session.Clone(),
		Source:       SourceRefresh,
		SessionToken: r.token,
		AccessToken:  r.tokens.AccessToken,
		Cookies:      []*http.Cookie{m.SessionCookie(r.token, r.session.ExpiresAt)},
	}
	// The token's own "exp" is what the verifier enforces, so the cookie
	// lives exactly as long; expires_in is only a fallback.
	accessExp := r.accessExp
	if accessExp.IsZero() {
		accessExp = r.tokens.ExpiresAt
	}
	res.Cookies = append(res.Cookies, m.tokenCookie(m.accessCookie, r.tokens.AccessToken, accessExp))
	// An upstream that does not rotate refresh tokens returns none or the
	// same one: the client keeps its cookie.
	if rt := r.tokens.RefreshToken; rt != "" && rt != c.RefreshToken {
		res.RefreshToken = rt
		res.Cookies = append(res.Cookies, m.tokenCookie(m.refreshCookie, rt, r.session.ExpiresAt))
	}
	return res, nil
}

// sessionFromAccessToken fetches the user a verified access token names and
// creates a session for it.
func (m *Manager) sessionFromAccessToken(ctx context.Context, op, accessToken string, claims *jwtverify.Claims, d store.Device, src Source) (string, *store.Session, error) {
	user, err := m.cfg.Upstream.FetchUser(ctx, accessToken)
	if err != nil {
		return "", nil, upstreamErr(op+": fetch user", err)
	}
	if user.ID != claims.UserID {
		// Either the upstream or the token is not what it claims: sign
		// nobody in.
		m.log.WarnContext(ctx, "manager: upstream user does not match the access token's subject",
			"token_user", claims.UserID, "upstream_user", user.ID)
		return "", nil, noSession(op, "upstream user does not match the access token")
	}
	return m.createSession(ctx, op, user.ID, user.Profile, d, src)
}

// CreateSession creates a session for userID without HTTP (SignIn is the
// HTTP form) and returns its token, which the caller hands to the client.
// MaxSessionsPerUser applies. Invalid input (user ID, profile, device)
// fails with an error wrapping store.ErrInvalid or store.ErrTooLarge and
// changes nothing.
func (m *Manager) CreateSession(ctx context.Context, userID string, user json.RawMessage, d store.Device) (string, *store.Session, error) {
	return m.createSession(ctx, "create session", userID, user, d, SourceSession)
}

func (m *Manager) createSession(ctx context.Context, op, userID string, user json.RawMessage, d store.Device, src Source) (string, *store.Session, error) {
	token, s, err := m.newSession(op, userID, user, d)
	if err != nil {
		return "", nil, err
	}
	if err := m.insert(ctx, op, s, src); err != nil {
		return "", nil, err
	}
	return token, s, nil
}

// newSession mints a token and the session to store for it, and checks
// the session against the store's contract, so that callers can reject
// bad input before they change anything.
func (m *Manager) newSession(op, userID string, user json.RawMessage, d store.Device) (string, *store.Session, error) {
	token, err := store.NewToken(userID)
	if err != nil {
		return "", nil, fmt.Errorf("manager: %s: %w", op, err)
	}
	id, err := store.IDFromToken(token)
	if err != nil {
		return "", nil, fmt.Errorf("manager: %s: %w", op, err)
	}
	now := m.now().Truncate(time.Millisecond)
	s, err := store.PrepareCreate(&store.Session{
		ID: id, UserID: userID, User: user, Device: d,
		CreatedAt: now, UpdatedAt: now, LastSeenAt: now,
		ExpiresAt: m.expiry(now, now),
	}, now)
	if err != nil {
		return "", nil, fmt.Errorf("manager: %s: %w", op, err)
	}
	return token, s, nil
}

// insert stores a session made by newSession, under MaxSessionsPerUser.
func (m *Manager) insert(ctx context.Context, op string, s *store.Session, src Source) error {
	if m.cfg.MaxSessionsPerUser > 0 && m.cfg.IdleTimeout > 0 {
		// Idle sessions stay in the store until their expiry; they must
		// not take the places of live ones under the cap.
		if err := m.pruneIdle(ctx, s.UserID, s.CreatedAt); err != nil {
			return storeErr(op, err)
		}
	}
	evicted, err := m.st.Create(ctx, s, store.CreateOptions{MaxPerUser: m.cfg.MaxSessionsPerUser, OnLimit: m.cfg.OnLimit})
	if err != nil {
		return storeErr(op, err)
	}
	m.log.DebugContext(ctx, "manager: session created", "session_id", s.ID, "user_id", s.UserID, "source", src.String())
	m.emit(ctx, hookSessionCreated, Event{Time: s.CreatedAt, UserID: s.UserID, SessionID: s.ID, Source: src, Device: s.Device})
	for _, ev := range evicted {
		m.log.DebugContext(ctx, "manager: session evicted by MaxSessionsPerUser", "session_id", ev, "user_id", s.UserID)
		m.emit(ctx, hookSessionRevoked, Event{Time: s.CreatedAt, UserID: s.UserID, SessionID: ev, Reason: "evicted"})
	}
	return nil
}

// pruneIdle deletes userID's sessions that the idle timeout has ended.
func (m *Manager) pruneIdle(ctx context.Context, userID string, now time.Time) error {
	list, err := m.st.List(ctx, userID)
	if err != nil {
		return err
	}
	for _, s := range list {
		if m.idle(s, now) {
			if err := m.endIdle(ctx, s); err != nil {
				return err
			}
		}
	}
	return nil
}

// Lookup returns the live session of token from the store, without
// sliding its expiry. A malformed token is ErrNoSession without a store
// call; a session past its IdleTimeout is deleted and is ErrNoSession.
func (m *Manager) Lookup(ctx context.Context, token string) (*store.Session, error) {
	return m.lookup(ctx, "lookup", token)
}

func (m *Manager) lookup(ctx context.Context, op, token string) (*store.Session, error) {
	id, err := store.IDFromToken(token)
	if err != nil {
		return nil, noSession(op, "malformed session token")
	}
	return m.lookupID(ctx, op, id)
}

func (m *Manager) lookupID(ctx context.Context, op, id string) (*store.Session, error) {
	s, err := m.st.Get(ctx, id)
	if err != nil {
		return nil, storeErr(op, err)
	}
	now := m.now()
	if !s.Live(now) {
		return nil, noSession(op, "session expired")
	}
	if m.idle(s, now) {
		if err := m.endIdle(ctx, s); err != nil {
			return nil, storeErr(op, err)
		}
		return nil, noSession(op, "session idle too long")
	}
	return s, nil
}

func (m *Manager) endIdle(ctx context.Context, s *store.Session) error {
	if err := m.st.Delete(ctx, s.ID); err != nil {
		return err
	}
	m.log.DebugContext(ctx, "manager: idle session ended", "session_id", s.ID, "user_id", s.UserID)
	m.emit(ctx, hookSessionRevoked, Event{UserID: s.UserID, SessionID: s.ID, Device: s.Device, Reason: "idle"})
	return nil
}

// Touch looks the session of token up and applies the sliding-expiry rule
// now: the expiry moves to now+MaxAge (capped by AbsoluteMaxAge) when
// UpdateAge has passed since the last extension, and extended reports
// whether it moved, in which case the client's cookie must be sent again.
// With an IdleTimeout, Touch may also write LastSeenAt without moving the
// expiry (see Config.IdleTimeout).
func (m *Manager) Touch(ctx context.Context, token string) (s *store.Session, extended bool, err error) {
	s, err = m.lookup(ctx, "touch", token)
	if err != nil {
		return nil, false, err
	}
	return m.slideNow(ctx, s)
}

// slideNow applies the sliding rule to s, just read from the store.
func (m *Manager) slideNow(ctx context.Context, s *store.Session) (*store.Session, bool, error) {
	now := m.now().Truncate(time.Millisecond)
	expires, write, extended := m.slide(s, now)
	if !write {
		return s, false, nil
	}
	t, err := m.st.Touch(ctx, s.ID, now, expires)
	if err != nil {
		if errors.Is(err, store.ErrInvalid) {
			// The session expired between Get and Touch.
			return nil, false, noSession("touch", "session expired")
		}
		return nil, false, storeErr("touch", err)
	}
	if extended {
		m.log.DebugContext(ctx, "manager: session extended", "session_id", s.ID, "user_id", s.UserID)
	}
	return t, extended, nil
}

// UpdateSession replaces the stored user profile on every live session of
// userID (after the user changed their name, say) and returns how many
// sessions it updated.
func (m *Manager) UpdateSession(ctx context.Context, userID string, user json.RawMessage) (int, error) {
	if err := store.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("manager: update session: %w", err)
	}
	n, err := m.st.UpdateUser(ctx, userID, user)
	if err != nil {
		return 0, storeErr("update session", err)
	}
	return n, nil
}

// InvalidateUserSessions ends every session of userID ("sign out
// everywhere") in one atomic step and returns how many it ended.
func (m *Manager) InvalidateUserSessions(ctx context.Context, userID string) (int, error) {
	if err := store.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("manager: invalidate user sessions: %w", err)
	}
	n, err := m.st.DeleteUser(ctx, userID)
	if err != nil {
		return 0, storeErr("invalidate user sessions", err)
	}
	m.log.InfoContext(ctx, "manager: user sessions invalidated", "user_id", userID, "count", n)
	m.emit(ctx, hookInvalidated, Event{UserID: userID, Count: n})
	return n, nil
}

// GetUserSessions returns userID's live sessions, oldest first, for a
// "your devices" page: device, creation and last-seen times, and the
// session ID that RevokeSession takes. Sessions never hold tokens.
// LastSeenAt is written at most once per UpdateAge (IdleTimeout/10 with an
// idle timeout), so it is that coarse.
func (m *Manager) GetUserSessions(ctx context.Context, userID string) ([]*store.Session, error) {
	if err := store.ValidateUserID(userID); err != nil {
		return nil, fmt.Errorf("manager: get user sessions: %w", err)
	}
	list, err := m.st.List(ctx, userID)
	if err != nil {
		return nil, storeErr("get user sessions", err)
	}
	now := m.now()
	live := list[:0]
	for _, s := range list {
		if s.Live(now) && !m.idle(s, now) {
			live = append(live, s)
		}
	}
	return live, nil
}

// RevokeSession ends one session of userID by its ID ("sign out that
// device"). It returns an error wrapping ErrNoSession, and changes
// nothing, when the session does not exist or belongs to another user.
func (m *Manager) RevokeSession(ctx context.Context, userID, sessionID string) error {
	if err := store.ValidateUserID(userID); err != nil {
		return fmt.Errorf("manager: revoke session: %w", err)
	}
	// The tag check refuses most foreign IDs without a store call.
	if !store.ValidID(sessionID) || sessionID[:store.TagLen] != store.UserTag(userID) {
		return noSession("revoke session", "no such session for this user")
	}
	s, err := m.st.Get(ctx, sessionID)
	if err != nil {
		return storeErr("revoke session", err)
	}
	if s.UserID != userID {
		return noSession("revoke session", "no such session for this user")
	}
	if err := m.st.Delete(ctx, sessionID); err != nil {
		return storeErr("revoke session", err)
	}
	m.log.DebugContext(ctx, "manager: session revoked", "session_id", sessionID, "user_id", userID)
	m.emit(ctx, hookSessionRevoked, Event{UserID: userID, SessionID: sessionID, Device: s.Device, Reason: "revoked"})
	return nil
}

// RevokeToken ends the session of token (sign-out without HTTP). It
// returns an error wrapping ErrNoSession when no live session has that
// token.
func (m *Manager) RevokeToken(ctx context.Context, token string) error {
	s, err := m.lookup(ctx, "revoke token", token)
	if err != nil {
		return err
	}
	return m.signOut(ctx, s)
}

func (m *Manager) signOut(ctx context.Context, s *store.Session) error {
	if err := m.st.Delete(ctx, s.ID); err != nil {
		return storeErr("sign out", err)
	}
	m.log.DebugContext(ctx, "manager: signed out", "session_id", s.ID, "user_id", s.UserID)
	m.emit(ctx, hookSignOut, Event{UserID: s.UserID, SessionID: s.ID, Device: s.Device})
	return nil
}

// Refreshed tokens are held for a retry when the rest of the refresh step
// fails (the store or the user-info endpoint is down): upstreams that
// rotate refresh tokens have already invalidated the client's one, so
// dropping the new tokens would sign the user out over an outage.
const (
	holdFor     = time.Minute
	maxHeldSets = 4096 // bounds memory during a long outage
)

type heldTokens struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]heldEntry // by SHA-256 of the old refresh token
}

type heldEntry struct {
	tokens *upstream.Tokens
	until  time.Time
}

func (h *heldTokens) put(oldRefresh string, t *upstream.Tokens, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.m) >= maxHeldSets {
		for k, e := range h.m {
			if !now.Before(e.until) {
				delete(h.m, k)
			}
		}
		if len(h.m) >= maxHeldSets {
			return
		}
	}
	h.m[sha256.Sum256([]byte(oldRefresh))] = heldEntry{tokens: t, until: now.Add(holdFor)}
}

// take returns and forgets the tokens held for oldRefresh.
func (h *heldTokens) take(oldRefresh string, now time.Time) (*upstream.Tokens, bool) {
	key := sha256.Sum256([]byte(oldRefresh))
	h.mu.Lock()
	defer h.mu.Unlock()
	e, ok := h.m[key]
	if !ok {
		return nil, false
	}
	delete(h.m, key)
	return e.tokens, now.Before(e.until)
}

// maxAccessSessions bounds the access-token memory; past it, arbitrary
// entries are forgotten, which costs at most one more session each. A full
// map sheds a sixteenth at once, so the scan that finds expired entries runs
// once per maxAccessSessions/16 new tokens, not on every one.
const maxAccessSessions = 100_000

// accessSessions maps the SHA-256 of a verified access token to the ID of
// the session it made, until the token expires. It holds no secret: a
// session ID is not a credential and the token is only hashed.
type accessSessions struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]accessSession
}

type accessSession struct {
	id    string
	until time.Time
}

func (a *accessSessions) get(token string, now time.Time) (string, bool) {
	key := sha256.Sum256([]byte(token))
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.m[key]
	if !ok || !now.Before(e.until) {
		return "", false
	}
	return e.id, true
}

func (a *accessSessions) put(token, id string, until, now time.Time) {
	key := sha256.Sum256([]byte(token))
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.m) >= maxAccessSessions {
		for k, e := range a.m {
			if !now.Before(e.until) {
				delete(a.m, k)
			}
		}
		for k := range a.m {
			if len(a.m) < maxAccessSessions-maxAccessSessions/16 {
				break
			}
			delete(a.m, k)
		}
	}
	a.m[key] = accessSession{id: id, until: until}
}

func (a *accessSessions) forget(token string) {
	key := sha256.Sum256([]byte(token))
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.m, key)
}
