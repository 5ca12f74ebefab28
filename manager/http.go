package manager

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sessiond/sessiond/store"
)

// CookieName returns the name the session cookie is sent under
// ("__Host-session-token" in production, "session-token" in development).
func (m *Manager) CookieName() string { return m.sessionCookie }

// AccessTokenCookieName and RefreshTokenCookieName return the names the
// token cookies are read and written under.
func (m *Manager) AccessTokenCookieName() string  { return m.accessCookie }
func (m *Manager) RefreshTokenCookieName() string { return m.refreshCookie }

// SessionCookie returns the session cookie for token: HttpOnly, Path=/, no
// Domain, SameSite as configured (Lax by default), Secure unless
// Development, and Max-Age the session's remaining life.
func (m *Manager) SessionCookie(token string, expires time.Time) *http.Cookie {
	return m.tokenCookie(m.sessionCookie, token, expires)
}

func (m *Manager) tokenCookie(name, value string, expires time.Time) *http.Cookie {
	left := expires.Sub(m.now())
	maxAge := int(left.Round(time.Second) / time.Second)
	if maxAge <= 0 {
		// Max-Age=0 would delete the cookie; a session with under a
		// second left still deserves it for that second.
		maxAge = 1
	}
	c := m.cookie(name, value)
	c.MaxAge = maxAge
	c.Expires = expires.UTC()
	return c
}

func (m *Manager) cookie(name, value string) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		Secure:   !m.cfg.Development,
		HttpOnly: true,
		SameSite: m.cfg.Cookie.SameSite,
	}
}

// ClearCookies returns the Set-Cookies that delete the session cookie and
// the access and refresh token cookies (which would otherwise sign the
// client straight back in).
func (m *Manager) ClearCookies() []*http.Cookie {
	return []*http.Cookie{m.clearCookie(m.sessionCookie), m.clearCookie(m.accessCookie), m.clearCookie(m.refreshCookie)}
}

func (m *Manager) clearCookie(name string) *http.Cookie {
	c := m.cookie(name, "")
	c.MaxAge = -1
	c.Expires = time.Unix(0, 0).UTC()
	return c
}

// dropSetCookie removes Set-Cookie headers for name written earlier in
// this response, so that a later cookie replaces them instead of relying
// on the browser to apply both in order.
func dropSetCookie(w http.ResponseWriter, name string) {
	h := w.Header()
	lines := h.Values("Set-Cookie")
	kept := lines[:0:0]
	for _, l := range lines {
		if !strings.HasPrefix(l, name+"=") {
			kept = append(kept, l)
		}
	}
	if len(kept) == len(lines) {
		return
	}
	h.Del("Set-Cookie")
	for _, l := range kept {
		h.Add("Set-Cookie", l)
	}
}

// writeCookies sends cookies and keeps shared caches from storing the
// response, which now carries a secret.
func writeCookies(w http.ResponseWriter, cookies []*http.Cookie) {
	if len(cookies) == 0 {
		return
	}
	for _, c := range cookies {
		http.SetCookie(w, c)
	}
	w.Header().Set("Cache-Control", "no-store")
}

// Credentials returns the credentials r presents: the session cookie, an
// access token (Authorization: Bearer, else the access-token cookie), the
// refresh-token cookie, and the device, as m.DeviceFromRequest finds it
// (behind Config.TrustedProxies, the client's IP rather than the proxy's).
func (m *Manager) Credentials(r *http.Request) Credentials {
	c := m.tokens(r)
	c.Device = m.DeviceFromRequest(r)
	return c
}

// tokens is Credentials without the device, which only a step that creates
// a session needs: a request resolved by its session cookie (the common
// case) does not pay for parsing its User-Agent and address.
func (m *Manager) tokens(r *http.Request) Credentials {
	c := Credentials{
		SessionToken: cookieValue(r, m.sessionCookie),
		AccessToken:  cookieValue(r, m.accessCookie),
		RefreshToken: cookieValue(r, m.refreshCookie),
	}
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		if tok = strings.TrimSpace(tok); tok != "" {
			c.AccessToken = tok
		}
	}
	return c
}

// cookieValue returns the first non-empty value of the cookie name in r
// (the first wins over a planted duplicate, as in r.Cookie), or "".
func cookieValue(r *http.Request, name string) string {
	for _, ck := range namedCookies(r, name) {
		if ck.Value != "" {
			return ck.Value
		}
	}
	return ""
}

// namedCookies is r.CookiesNamed(name), without parsing the Cookie header
// when name does not appear in it. Browsers send the site's every cookie;
// r.Cookies would allocate one for each on every request.
func namedCookies(r *http.Request, name string) []*http.Cookie {
	for _, line := range r.Header["Cookie"] {
		if strings.Contains(line, name) {
			return r.CookiesNamed(name)
		}
	}
	return nil
}

// DeviceFromRequest describes the client of r within the store's limits:
// its User-Agent (cut to store.MaxUserAgentLen) and the IP of RemoteAddr,
// the direct peer, which behind a proxy is the proxy. The Manager's
// DeviceFromRequest method also believes Config.TrustedProxies.
func DeviceFromRequest(r *http.Request) store.Device {
	d := store.Device{UserAgent: userAgent(r)}
	if ip, ok := peerAddr(r); ok {
		d.IP = ip.String()
	}
	return d
}

// DeviceFromRequest describes the client of r as the Manager records it
// on a new session: its User-Agent (cut to store.MaxUserAgentLen) and its
// IP, which is RemoteAddr's unless RemoteAddr is one of
// Config.TrustedProxies, in which case X-Forwarded-For says whose it is
// (see TrustedProxies). Use it to fill the device for CreateSession.
func (m *Manager) DeviceFromRequest(r *http.Request) store.Device {
	d := store.Device{UserAgent: userAgent(r)}
	if ip, ok := m.clientAddr(r); ok {
		d.IP = ip.String()
	}
	return d
}

// userAgent is r's User-Agent without control characters or invalid
// UTF-8, cut to what the store accepts.
func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > store.MaxUserAgentLen {
		ua = ua[:store.MaxUserAgentLen]
	}
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f || c == utf8.RuneError {
			return -1
		}
		return c
	}, strings.ToValidUTF8(ua, ""))
}

// peerAddr is the IP of r.RemoteAddr, IPv4-mapped addresses unmapped; not
// ok when RemoteAddr holds no IP (a Unix socket listener).
func peerAddr(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// clientAddr is the client's IP: the peer's, or, when the peer is a
// trusted proxy, the first untrusted X-Forwarded-For entry from the right
// (the rules are in Config.TrustedProxies). It allocates nothing for a
// well-formed header.
func (m *Manager) clientAddr(r *http.Request) (netip.Addr, bool) {
	ip, ok := peerAddr(r)
	if !ok || !m.trustedProxy(ip) {
		return ip, ok
	}
	// The header lines in order make one list; its right end is the
	// newest hop, the only end a trusted proxy wrote.
	lines := r.Header["X-Forwarded-For"]
	for i := len(lines) - 1; i >= 0; i-- {
		rest := lines[i]
		for rest != "" {
			entry := rest
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				entry, rest = rest[j+1:], rest[:j]
			} else {
				rest = ""
			}
			entry = strings.Trim(entry, " \t")
			if entry == "" {
				continue // an empty list element (RFC 9110, 5.6.1)
			}
			hop, ok := parseForwardedFor(entry)
			if !ok {
				// Not an address: the hop that wrote it is not to be
				// believed; keep what the last trusted hop saw.
				return ip, true
			}
			ip = hop
			if !m.trustedProxy(hop) {
				return hop, true
			}
		}
	}
	return ip, true // every hop trusted: the leftmost is the client
}

// trustedProxy reports whether ip is in Config.TrustedProxies.
func (m *Manager) trustedProxy(ip netip.Addr) bool {
	ip = ip.WithZone("") // a prefix never contains a zoned address
	for _, p := range m.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseForwardedFor parses one X-Forwarded-For entry: an IPv4 or IPv6
// address, with or without a port ("192.0.2.1:5678", "[2001:db8::1]:443",
// "[2001:db8::1]"), IPv4-mapped addresses unmapped. Anything else,
// including "unknown", obfuscated identifiers and zoned addresses
// (meaningless off their own host), is not ok.
func parseForwardedFor(s string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
			if ip, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil || !ip.Is6() {
				return netip.Addr{}, false
			}
		} else {
			ap, err := netip.ParseAddrPort(s)
			if err != nil {
				return netip.Addr{}, false
			}
			ip = ap.Addr()
		}
	}
	if ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// requestState is the per-request cache: the outcome of resolving the
// request once, shared by every GetServerSession of that request.
type requestState struct {
	m       *Manager
	mu      sync.Mutex
	session *store.Session
	err     error
}

type ctxKey struct{}

func stateFrom(ctx context.Context) *requestState {
	st, _ := ctx.Value(ctxKey{}).(*requestState)
	return st
}

func (st *requestState) get() (*store.Session, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err != nil {
		return nil, st.err
	}
	return st.session.Clone(), nil
}

func (st *requestState) set(s *store.Session, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.session, st.err = s, err
}

// Middleware resolves the request's session once, eagerly, before next
// runs, and puts the outcome in the request context, where
// GetServerSession and FromContext find it without another store read
// (the Go counterpart of React's cache()). Resolving before next is what
// lets it send the cookies the resolve chain sets (a new session, a
// refreshed token, an extended expiry) before the handler writes its
// response; a request without credentials costs no store call.
//
// A request without a valid session goes on to next anonymously (use
// RequireSession to refuse it); the credential cookies it sent, all found
// dead, are cleared. When the store or upstream is unavailable, Middleware
// answers 503 itself and leaves every cookie alone.
//
// It works with http.ServeMux and any router built on net/http; wrapping
// twice resolves once.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if st := stateFrom(r.Context()); st != nil && st.m == m {
			next.ServeHTTP(w, r)
			return
		}
		st := m.resolveRequest(w, r)
		if errors.Is(st.err, ErrUnavailable) {
			writeError(w, r, http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, st)))
	})
}

func (m *Manager) resolveRequest(w http.ResponseWriter, r *http.Request) *requestState {
	c := m.tokens(r)
	st := &requestState{m: m}
	res, err := m.resolve(r.Context(), c, r)
	switch {
	case err == nil:
		st.set(res.Session, nil)
		writeCookies(w, res.Cookies)
	case errors.Is(err, ErrNoSession):
		st.set(nil, err)
		// Every credential cookie the request sent was tried and found
		// dead; clearing them keeps the client from presenting them (and
		// the upstream from being asked about them) on every request.
		writeCookies(w, m.deadCookies(r, c))
	default:
		st.set(nil, err)
	}
	return st
}

// deadCookies returns the Set-Cookies that clear the credential cookies r
// sent, after the resolve chain rejected them all. An access-token cookie
// is kept when an Authorization header was used instead of it, and token
// cookies are left alone when the JWT steps are off.
func (m *Manager) deadCookies(r *http.Request, c Credentials) []*http.Cookie {
	out := m.clearIfSent(nil, r, m.sessionCookie, c.SessionToken)
	// Token cookies are only the manager's to clear when it uses them.
	if m.cfg.JWT != nil && m.cfg.Upstream != nil {
		out = m.clearIfSent(out, r, m.accessCookie, c.AccessToken)
		out = m.clearIfSent(out, r, m.refreshCookie, c.RefreshToken)
	}
	return out
}

// clearIfSent appends the clearing of cookie name to out when r sent it
// with value.
func (m *Manager) clearIfSent(out []*http.Cookie, r *http.Request, name, value string) []*http.Cookie {
	for _, ck := range namedCookies(r, name) {
		if ck.Value == value {
			return append(out, m.clearCookie(name))
		}
	}
	return out
}

// GetServerSession returns the request's session. Behind Middleware it
// returns the cached outcome: no store call however often it is called.
// Without Middleware it looks the session cookie up in the store on every
// call, without sliding expiry or the JWT steps, which need to set cookies.
//
// Errors wrap ErrNoSession (401) or ErrUnavailable (503).
func (m *Manager) GetServerSession(r *http.Request) (*store.Session, error) {
	if st := stateFrom(r.Context()); st != nil && st.m == m {
		return st.get()
	}
	tok := m.tokens(r).SessionToken
	if tok == "" {
		return nil, noSession("get server session", "no session cookie")
	}
	return m.Lookup(r.Context(), tok)
}

// FromContext returns the session Middleware resolved for the request
// whose context ctx is.
func FromContext(ctx context.Context) (*store.Session, bool) {
	st := stateFrom(ctx)
	if st == nil {
		return nil, false
	}
	s, err := st.get()
	return s, err == nil
}

// RequireSession runs next only for requests with a session (resolved as
// by Middleware, which it includes). Others get 401, or 503 when the store
// or upstream is unavailable, as JSON ({"error":"unauthorized"}) when the
// client accepts application/json, as plain text otherwise.
func (m *Manager) RequireSession(next http.Handler) http.Handler {
	return m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := m.GetServerSession(r)
		switch {
		case err == nil:
			next.ServeHTTP(w, r)
		case errors.Is(err, ErrUnavailable):
			writeError(w, r, http.StatusServiceUnavailable)
		case errors.Is(err, ErrNoSession), errors.Is(err, store.ErrTooManySessions):
			writeError(w, r, http.StatusUnauthorized)
		case errors.Is(err, context.Canceled):
			// The client has gone; nobody reads the answer.
		default:
			m.log.ErrorContext(r.Context(), "manager: resolving the session failed", "err", err)
			writeError(w, r, http.StatusInternalServerError)
		}
	}))
}

var errorCodes = map[int]string{
	http.StatusUnauthorized:        "unauthorized",
	http.StatusServiceUnavailable:  "unavailable",
	http.StatusInternalServerError: "internal",
}

func writeError(w http.ResponseWriter, r *http.Request, code int) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	if code == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		h.Set("Content-Type", "application/json")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": errorCodes[code]})
		return
	}
	http.Error(w, http.StatusText(code), code)
}

// SignIn creates a session for userID (after the app has checked the
// user's credentials), sets its cookie on w and returns it. A session the
// request's old session cookie pointed at is deleted first, so a token
// planted before sign-in (session fixation) or left from another account
// is worthless afterwards. Empty fields of d are filled from r by
// m.DeviceFromRequest (User-Agent, and the client's IP, found through
// Config.TrustedProxies). MaxSessionsPerUser applies.
//
// Invalid input fails with an error wrapping store.ErrInvalid or
// store.ErrTooLarge and changes nothing; a refused sign-in over the cap
// wraps store.ErrTooManySessions.
func (m *Manager) SignIn(ctx context.Context, w http.ResponseWriter, r *http.Request, userID string, user json.RawMessage, d store.Device) (*store.Session, error) {
	const op = "sign in"
	rd := m.DeviceFromRequest(r)
	if d.UserAgent == "" {
		d.UserAgent = rd.UserAgent
	}
	if d.IP == "" {
		d.IP = rd.IP
	}
	token, s, err := m.newSession(op, userID, user, d)
	if err != nil {
		return nil, err
	}
	st := stateFrom(r.Context())
	if st != nil && st.m != m {
		st = nil
	}
	if old := m.tokens(r).SessionToken; old != "" {
		if id, err := store.IDFromToken(old); err == nil {
			if err := m.st.Delete(ctx, id); err != nil {
				return nil, storeErr(op, err)
			}
			e := Event{SessionID: id, Reason: "replaced"}
			if st != nil && st.session != nil && st.session.ID == id {
				e.UserID, e.Device = st.session.UserID, st.session.Device
			}
			m.emit(ctx, hookSessionRevoked, e)
		}
	}
	if err := m.insert(ctx, op, s, SourceSession); err != nil {
		return nil, err
	}
	dropSetCookie(w, m.sessionCookie) // a clearing written by Middleware
	writeCookies(w, []*http.Cookie{m.SessionCookie(token, s.ExpiresAt)})
	if st != nil {
		st.set(s, nil)
	}
	m.log.DebugContext(ctx, "manager: signed in", "session_id", s.ID, "user_id", userID)
	m.emit(ctx, hookSignIn, Event{UserID: userID, SessionID: s.ID, Source: SourceSession, Device: s.Device})
	return s.Clone(), nil
}

// SignOut deletes the request's session and clears the session, access
// and refresh token cookies. Without a session it only clears the
// cookies. When the store is unavailable it returns an error wrapping
// ErrUnavailable and leaves the cookies, so that the user is not shown
// "signed out" while the session still works.
func (m *Manager) SignOut(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	var s *store.Session
	st := stateFrom(ctx)
	if st != nil && st.m == m {
		st.mu.Lock()
		s = st.session
		st.mu.Unlock()
	} else if tok := m.tokens(r).SessionToken; tok != "" {
		var err error
		s, err = m.lookup(ctx, "sign out", tok)
		if err != nil && !errors.Is(err, ErrNoSession) {
			return err
		}
	}
	if s != nil {
		if err := m.signOut(ctx, s); err != nil {
			return err
		}
	}
	clearing := m.ClearCookies()
	for _, c := range clearing {
		dropSetCookie(w, c.Name) // e.g. an extension written by Middleware
	}
	writeCookies(w, clearing)
	if st != nil && st.m == m {
		st.set(nil, noSession("sign out", "signed out"))
	}
	return nil
}
