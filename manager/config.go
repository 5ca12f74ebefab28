package manager

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond/manager/jwtverify"
	"github.com/sessiond/sessiond/manager/upstream"
	"github.com/sessiond/sessiond/store"
)

// Defaults of Config. They follow auth.js (NextAuth) so that apps moving
// from it keep their behaviour.
const (
	DefaultMaxAge             = 30 * 24 * time.Hour
	DefaultUpdateAge          = 24 * time.Hour
	DefaultCookieName         = "session-token"
	DefaultAccessTokenCookie  = "access-token"
	DefaultRefreshTokenCookie = "refresh-token"
	// HostPrefix is put in front of every cookie name in production: the
	// browser then only accepts the cookie from a secure origin, with
	// Path=/ and without Domain, so a sibling subdomain cannot plant or
	// overwrite it (cookie tossing, session fixation).
	HostPrefix = "__Host-"
)

// Config tunes a Manager. The zero value is a production configuration with
// the documented defaults; New validates it.
type Config struct {
	// MaxAge is how long a session lives after its last extension.
	// Default: 30 days.
	MaxAge time.Duration
	// UpdateAge is how often, at most, a session's expiry is extended
	// (auth.js "updateAge"): a request extends the session only when
	// UpdateAge has passed since the last extension, so most reads do not
	// write. Must not exceed MaxAge. Default: 24 hours, or MaxAge/2 when
	// that is shorter. For auth.js's updateAge: 0 (extend on every
	// request, one store write each) set time.Nanosecond.
	UpdateAge time.Duration
	// AbsoluteMaxAge caps a session's whole life, from its creation,
	// whatever its activity. Zero means no cap.
	AbsoluteMaxAge time.Duration
	// IdleTimeout ends a session that has not been used for this long.
	// Zero means no idle timeout.
	//
	// Last use is the session's LastSeenAt. With an IdleTimeout it is
	// written at most every IdleTimeout/10 (or every UpdateAge if that is
	// shorter), whether or not the expiry moves, so a session ends between
	// 0.9×IdleTimeout and IdleTimeout after its last use: never later.
	// Without an IdleTimeout, LastSeenAt is written only with extensions
	// (at most once per UpdateAge).
	IdleTimeout time.Duration

	// MaxSessionsPerUser caps a user's live sessions (devices); zero means
	// no cap. OnLimit says what happens to a sign-in over the cap:
	// store.EvictOldest (the default) ends the user's session that would
	// expire first, store.Refuse fails the sign-in with an error wrapping
	// store.ErrTooManySessions.
	MaxSessionsPerUser int
	OnLimit            store.LimitPolicy

	// Development allows plain http: cookies lose the Secure flag and the
	// __Host- prefix. Never set it in production; the zero value is the
	// production setting.
	Development bool
	// Cookie names and tunes the session cookie.
	Cookie CookieConfig
	// AccessTokenCookie is the cookie holding a JWT access token (step 2
	// of the resolve chain; an Authorization: Bearer header wins over it).
	// Default: "access-token" (with the __Host- prefix in production).
	AccessTokenCookie string
	// RefreshTokenCookie is the cookie holding the upstream refresh token
	// (step 3). Default: "refresh-token" (with the __Host- prefix in
	// production).
	RefreshTokenCookie string

	// JWT verifies access tokens. Steps 2 and 3 of the resolve chain (JWT
	// and refresh) need both JWT and Upstream; with either nil they are
	// off and only session tokens count.
	//
	// Ending sessions (SignOut, RevokeSession, InvalidateUserSessions)
	// does not revoke the upstream's tokens: a client still holding a
	// valid access or refresh token gets a new session from it. SignOut
	// clears the token cookies; revoke refresh tokens at the upstream too.
	JWT *jwtverify.Verifier
	// Upstream fetches users and refreshes tokens; see JWT.
	Upstream *upstream.Client

	// TrustedProxies are the networks of the reverse proxies and load
	// balancers in front of the app, whose X-Forwarded-For the Manager
	// believes when it records a new session's Device.IP (which
	// GetUserSessions shows). Empty, the default, trusts nobody: the IP is
	// the request's direct peer (RemoteAddr), which behind a proxy is the
	// proxy's own. List only your proxies (say
	// netip.MustParsePrefix("10.0.0.0/16")): a client inside a trusted
	// network can claim any IP.
	//
	// When the direct peer is trusted, the X-Forwarded-For entries (every
	// header line, in order) are read from the right: trusted addresses
	// are skipped and the first untrusted one is the client. Entries left
	// of it are whatever the client sent and are never believed. When
	// every entry is trusted (a request from inside your network) the
	// leftmost is the client. An entry that is not an IP address (with or
	// without a port: "203.0.113.7", "203.0.113.7:5678", "2001:db8::1",
	// "[2001:db8::1]:443") stops the walk, and the address right of it,
	// the last one a trusted hop vouched for, is used; empty list elements
	// are skipped. IPv4-mapped IPv6 addresses count as IPv4.
	//
	// Only X-Forwarded-For is read, not the RFC 7239 Forwarded header: a
	// header your proxies do not write is the client's to forge, so the
	// Manager reads the one that nginx ($proxy_add_x_forwarded_for), Envoy
	// and the cloud load balancers all append to. Your proxies must append
	// to it or overwrite it, never pass a client's through untouched.
	//
	// Every prefix must be valid (netip.Prefix.IsValid); an IPv4-mapped
	// prefix (::ffff:10.0.0.0/104) is taken in its IPv4 form. The device is
	// only worked out when a session is created, so this costs a request
	// resolved by its session cookie nothing.
	TrustedProxies []netip.Prefix

	// Logger receives the manager's logs; they carry session IDs and user
	// IDs, never a token. Routine events (sign-in, sign-out, a session
	// created, extended, evicted, revoked) log at Debug; "sign out
	// everywhere" at Info; an upstream whose user or tokens do not match
	// the access token at Warn; a hook that panicked at Error. Default:
	// slog.Default().
	Logger *slog.Logger
	// Hooks are called on sign-in, sign-out and other session events, for
	// audit logs and metrics. A hook that panics is logged and cannot
	// fail the operation; see Hooks.
	Hooks Hooks
	// Now is the clock. Default: time.Now. Tests inject a fake clock; give
	// the store the same one.
	Now func() time.Time
}

// CookieConfig tunes the session cookie. Every cookie of the manager is
// HttpOnly with Path=/ and no Domain; Secure and __Host- prefixed unless
// Config.Development is set.
type CookieConfig struct {
	// Name of the session cookie before the prefix. Default:
	// "session-token" (sent as "__Host-session-token" in production).
	Name string
	// SameSite of every cookie. Default: http.SameSiteLaxMode, which keeps
	// top-level navigation from other sites signed in while blocking
	// cross-site POSTs. http.SameSiteNoneMode needs production mode
	// (browsers require Secure with it).
	SameSite http.SameSite
}

// withDefaults returns cfg with every zero value replaced by its default,
// or an error saying which setting is wrong.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.MaxAge < time.Second {
		bad("MaxAge must be at least 1s, got %v", cfg.MaxAge)
	}
	if cfg.UpdateAge == 0 {
		cfg.UpdateAge = min(DefaultUpdateAge, cfg.MaxAge/2)
	}
	if cfg.UpdateAge < 0 || cfg.UpdateAge > cfg.MaxAge {
		bad("UpdateAge must be between 0 and MaxAge (%v), got %v", cfg.MaxAge, cfg.UpdateAge)
	}
	if cfg.AbsoluteMaxAge < 0 {
		bad("AbsoluteMaxAge must not be negative, got %v", cfg.AbsoluteMaxAge)
	}
	if cfg.AbsoluteMaxAge > 0 && cfg.AbsoluteMaxAge < time.Second {
		bad("AbsoluteMaxAge must be at least 1s when set, got %v", cfg.AbsoluteMaxAge)
	}
	if cfg.IdleTimeout < 0 {
		bad("IdleTimeout must not be negative, got %v", cfg.IdleTimeout)
	}
	if cfg.IdleTimeout > 0 && cfg.IdleTimeout < time.Second {
		bad("IdleTimeout must be at least 1s when set, got %v", cfg.IdleTimeout)
	}
	if cfg.MaxSessionsPerUser < 0 {
		bad("MaxSessionsPerUser must not be negative, got %d", cfg.MaxSessionsPerUser)
	}
	if cfg.OnLimit != store.EvictOldest && cfg.OnLimit != store.Refuse {
		bad("OnLimit must be store.EvictOldest or store.Refuse, got %d", cfg.OnLimit)
	}

	if cfg.Cookie.Name == "" {
		cfg.Cookie.Name = DefaultCookieName
	}
	if cfg.AccessTokenCookie == "" {
		cfg.AccessTokenCookie = DefaultAccessTokenCookie
	}
	if cfg.RefreshTokenCookie == "" {
		cfg.RefreshTokenCookie = DefaultRefreshTokenCookie
	}
	names := map[string]string{}
	for _, c := range []struct{ field, name string }{
		{"Cookie.Name", cfg.Cookie.Name},
		{"AccessTokenCookie", cfg.AccessTokenCookie},
		{"RefreshTokenCookie", cfg.RefreshTokenCookie},
	} {
		if err := validCookieName(c.name); err != nil {
			bad("%s: %v", c.field, err)
		}
		if cfg.Development && strings.HasPrefix(c.name, HostPrefix) {
			bad("%s: a %s cookie needs Secure, which Development turns off", c.field, HostPrefix)
		}
		if other, dup := names[c.name]; dup {
			bad("%s and %s name the same cookie %q", other, c.field, c.name)
		}
		names[c.name] = c.field
	}
	switch cfg.Cookie.SameSite {
	case 0, http.SameSiteDefaultMode:
		cfg.Cookie.SameSite = http.SameSiteLaxMode
	case http.SameSiteLaxMode, http.SameSiteStrictMode:
	case http.SameSiteNoneMode:
		if cfg.Development {
			bad("Cookie.SameSite: SameSite=None needs Secure, which Development turns off")
		}
	default:
		bad("Cookie.SameSite: unknown mode %d", cfg.Cookie.SameSite)
	}

	// A copy: the caller's slice could change under concurrent requests.
	cfg.TrustedProxies = slices.Clone(cfg.TrustedProxies)
	for i, p := range cfg.TrustedProxies {
		if !p.IsValid() {
			bad("TrustedProxies[%d]: not a valid network prefix (use netip.ParsePrefix, such as \"10.0.0.0/8\")", i)
			continue
		}
		// Addresses are unmapped before they are matched, so a mapped
		// prefix would never match; it means its IPv4 network. A zone
		// means nothing to a prefix.
		a, bits := p.Addr().WithZone(""), p.Bits()
		if a.Is4In6() && bits >= 96 {
			a, bits = a.Unmap(), bits-96
		}
		cfg.TrustedProxies[i] = netip.PrefixFrom(a, bits).Masked()
	}

	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(errs) > 0 {
		return cfg, fmt.Errorf("manager: invalid config: %w", errors.Join(errs...))
	}
	return cfg, nil
}

// validCookieName accepts an RFC 6265 token: the characters a browser
// keeps unquoted in a cookie name.
func validCookieName(name string) error {
	if len(name) > 64 {
		return fmt.Errorf("cookie name is %d bytes, limit 64", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return fmt.Errorf("cookie name %q has a character not allowed in a cookie name", name)
		}
	}
	return nil
}

// cookieName is the name a cookie is sent under: prefixed in production.
func (cfg *Config) cookieName(name string) string {
	if cfg.Development || strings.HasPrefix(name, HostPrefix) {
		return name
	}
	return HostPrefix + name
}
