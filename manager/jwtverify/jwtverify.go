// Package jwtverify verifies JWT access tokens locally, so the session
// manager can accept apps' existing JWTs without a round trip per request.
// Start with New; Verify is safe for concurrent use.
//
// Verification is strict: an algorithm allow-list enforced per key type (an
// HMAC secret only ever verifies HS*, an RSA key only RS*/PS*, an ECDSA key
// only the ES* of its curve, an Ed25519 key only EdDSA), "exp" required,
// issuer and audience checked when configured, and oversized tokens refused
// before any decoding. Errors never contain the token or any part of it.
package jwtverify

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/sessiond/sessiond/store"
)

// Errors returned by Verify. Neither matches the other: the manager treats an
// expired token as "try a refresh" and an invalid one as "no session".
var (
	// ErrInvalid: the token is malformed, oversized, badly signed, uses an
	// algorithm that is not allowed, lacks "exp" or the user ID claim, has the
	// wrong issuer or audience, or is not valid yet. The wrapped error also
	// matches the golang-jwt sentinel when there is one (jwt.ErrTokenMalformed,
	// jwt.ErrTokenSignatureInvalid, jwt.ErrTokenInvalidIssuer, ...).
	ErrInvalid = errors.New("invalid token")
	// ErrExpired: the token is correctly signed and otherwise valid but its
	// "exp" (plus Leeway) has passed. Verify returns the Claims with it.
	ErrExpired = errors.New("token expired")
)

// Defaults for the zero values of Config.
const (
	DefaultLeeway               = 10 * time.Second
	DefaultMaxTokenSize         = 8 << 10
	DefaultUserIDClaim          = "sub"
	DefaultJWKSTimeout          = 10 * time.Second
	DefaultJWKSRefreshInterval  = time.Hour
	DefaultJWKSUnknownKIDPeriod = time.Minute
	// maxJWKSBytes bounds a JWKS response; real sets are a few KiB.
	maxJWKSBytes = 1 << 20
)

// Config configures a Verifier. At least one of HMACSecrets, PublicKeysPEM
// and JWKSURL must be set. Zero values mean the documented default.
type Config struct {
	// HMACSecrets verify HS256/384/512 tokens. Several secrets allow rotation:
	// each is tried in turn. RFC 7518 requires a secret at least as long as
	// the hash: 32 bytes for HS256, 48 for HS384, 64 for HS512; New refuses a
	// secret shorter than 32 bytes, and a secret is only tried for the
	// algorithms its length allows.
	HMACSecrets [][]byte
	// PublicKeysPEM are PEM-encoded public keys ("PUBLIC KEY", "RSA PUBLIC
	// KEY") or X.509 certificates ("CERTIFICATE"): RSA (at least 2048 bits),
	// ECDSA P-256/P-384/P-521 or Ed25519. One entry may hold several blocks.
	// Every key of the token's family is tried; "kid" is not needed.
	PublicKeysPEM [][]byte
	// JWKSURL is a JSON Web Key Set fetched at New (New fails if the first
	// fetch fails), refreshed every JWKSRefreshInterval and, when a token names
	// an unknown "kid", at most once per JWKSUnknownKIDPeriod. Tokens checked
	// against it must carry "kid". Only asymmetric keys of the set are used.
	// The URL must be https, except for loopback hosts.
	JWKSURL string
	// Algorithms is the allow-list of "alg" values. Default: every algorithm
	// the configured keys can verify (HS* by secret length; RS*/PS* for RSA;
	// the ES* of each ECDSA curve; EdDSA for Ed25519; all asymmetric ones
	// with a JWKS). "none" is never allowed.
	Algorithms []string
	// Issuer, when set, must equal the "iss" claim.
	Issuer string
	// Audience, when set, must be in the "aud" claim.
	Audience string
	// Leeway allows for clock skew on "exp" and "nbf". Default: 10 s;
	// negative means none.
	Leeway time.Duration
	// MaxTokenSize in bytes; larger tokens are refused before any decoding.
	// Default: 8 KiB.
	MaxTokenSize int
	// UserIDClaim names the claim holding the user ID (a string or an
	// integer). Default: "sub".
	UserIDClaim string
	// HTTPClient fetches the JWKS. Default: a client with a 10 s timeout.
	HTTPClient *http.Client

	// JWKSRefreshInterval is how often the JWKS is re-fetched in the
	// background. Default: 1 hour.
	JWKSRefreshInterval time.Duration
	// JWKSUnknownKIDPeriod is the minimum time between re-fetches caused by
	// a token with an unknown "kid", so forged kids cannot hammer the key
	// server. Verify never waits for the limiter: a token arriving while it is
	// exhausted is refused. Default: 1 minute.
	JWKSUnknownKIDPeriod time.Duration
	// Logger receives JWKS refresh failures. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Claims is a verified token's content.
type Claims struct {
	// UserID is the UserIDClaim value; an integer claim is kept exact.
	UserID string
	// ExpiresAt is the "exp" claim.
	ExpiresAt time.Time
	// Raw holds every claim; numbers are json.Number.
	Raw map[string]any
}

// Verifier verifies tokens. It is safe for concurrent use. With a JWKS it
// owns a refresh goroutine: call Close when done.
type Verifier struct {
	hmac      [][]byte
	static    []any // public keys from PublicKeysPEM
	jwks      keyfunc.Keyfunc
	jwksWait  time.Duration
	parser    *jwt.Parser
	valOpts   []jwt.ParserOption // claim checks, reused to re-validate expired tokens
	keyFunc   jwt.Keyfunc
	maxSize   int
	userClaim string
	now       func() time.Time

	life      context.Context // cancelled by Close; bounds JWKS work
	closeOnce sync.Once
	cancel    context.CancelFunc
}

// New builds a Verifier. ctx bounds only the initial JWKS fetch; the
// refresh goroutine lives until Close. New fails when no key is configured,
// a key or algorithm is unusable, or the JWKS cannot be fetched.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	v := &Verifier{
		maxSize:   cfg.MaxTokenSize,
		userClaim: cfg.UserIDClaim,
		now:       cfg.Now,
	}
	if v.maxSize <= 0 {
		v.maxSize = DefaultMaxTokenSize
	}
	if v.userClaim == "" {
		v.userClaim = DefaultUserIDClaim
	}
	if v.now == nil {
		v.now = time.Now
	}
	if len(cfg.HMACSecrets) == 0 && len(cfg.PublicKeysPEM) == 0 && cfg.JWKSURL == "" {
		return nil, errors.New("jwtverify: no key configured (HMACSecrets, PublicKeysPEM or JWKSURL)")
	}

	var defaultAlgs []string
	for i, s := range cfg.HMACSecrets {
		if len(s) < hmacMinLen("HS256") {
			return nil, fmt.Errorf("jwtverify: HMAC secret %d is %d bytes; RFC 7518 requires at least 32", i, len(s))
		}
		v.hmac = append(v.hmac, slices.Clone(s))
		for _, alg := range []string{"HS256", "HS384", "HS512"} {
			if len(s) >= hmacMinLen(alg) {
				defaultAlgs = append(defaultAlgs, alg)
			}
		}
	}
	for i, p := range cfg.PublicKeysPEM {
		keys, err := parsePEMKeys(p)
		if err != nil {
			return nil, fmt.Errorf("jwtverify: public key %d: %w", i, err)
		}
		for _, k := range keys {
			v.static = append(v.static, k)
			defaultAlgs = append(defaultAlgs, algsForKey(k)...)
		}
	}
	if cfg.JWKSURL != "" {
		if err := checkJWKSURL(cfg.JWKSURL); err != nil {
			return nil, err
		}
		for alg, fam := range knownAlgs {
			if fam != familyHMAC {
				defaultAlgs = append(defaultAlgs, alg)
			}
		}
	}

	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = defaultAlgs
	}
	algs = slices.Compact(slices.Sorted(slices.Values(algs)))
	for _, alg := range algs {
		if _, ok := knownAlgs[alg]; !ok {
			return nil, fmt.Errorf("jwtverify: algorithm %q is not supported", alg)
		}
		if !slices.Contains(defaultAlgs, alg) {
			return nil, fmt.Errorf("jwtverify: algorithm %q is allowed but no configured key can verify it", alg)
		}
	}

	leeway := cfg.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	v.valOpts = []jwt.ParserOption{jwt.WithExpirationRequired(), jwt.WithLeeway(leeway)}
	if cfg.Issuer != "" {
		v.valOpts = append(v.valOpts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		v.valOpts = append(v.valOpts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(append([]jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithJSONNumber(),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(v.now),
	}, v.valOpts...)...)
	v.keyFunc = v.lookupKey

	v.life, v.cancel = context.WithCancel(context.Background())
	if cfg.JWKSURL != "" {
		if err := v.startJWKS(ctx, cfg); err != nil {
			v.cancel()
			return nil, err
		}
	}
	return v, nil
}

func checkJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("jwtverify: JWKSURL is not a valid URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if host := u.Hostname(); host == "localhost" || net.ParseIP(host).IsLoopback() {
			return nil
		}
	}
	return errors.New("jwtverify: JWKSURL must be https (http only for loopback hosts): keys fetched in clear text could be replaced")
}

func (v *Verifier) startJWKS(ctx context.Context, cfg Config) error {
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: DefaultJWKSTimeout}
	}
	limited := *client
	limited.Transport = limitTransport{base: client.Transport}

	v.jwksWait = client.Timeout
	if v.jwksWait <= 0 {
		v.jwksWait = DefaultJWKSTimeout
	}
	refresh := cfg.JWKSRefreshInterval
	if refresh <= 0 {
		refresh = DefaultJWKSRefreshInterval
	}
	period := cfg.JWKSUnknownKIDPeriod
	if period <= 0 {
		period = DefaultJWKSUnknownKIDPeriod
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.Default()
	}
	failFirst := false

	// ctx may be cancelled during New only; afterwards the Verifier's own
	// life context alone governs the refresh goroutine.
	stop := context.AfterFunc(ctx, v.cancel)
	kf, err := keyfunc.NewDefaultOverrideCtx(v.life, []string{cfg.JWKSURL}, keyfunc.Override{
		Client:                    &limited,
		HTTPTimeout:               v.jwksWait,
		NoErrorReturnFirstHTTPReq: &failFirst,
		RateLimitWaitMax:          v.jwksWait,
		RefreshInterval:           refresh,
		RefreshUnknownKID:         rate.NewLimiter(rate.Every(period), 1),
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
			return func(ctx context.Context, err error) {
				logger.WarnContext(ctx, "jwtverify: JWKS refresh failed", "error", err)
			}
		},
	})
	if !stop() {
		return fmt.Errorf("jwtverify: fetch JWKS: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("jwtverify: fetch JWKS: %w", err)
	}
	v.jwks = kf
	return nil
}

// limitTransport caps JWKS response bodies so a misbehaving key server
// cannot exhaust memory.
type limitTransport struct{ base http.RoundTripper }

func (t limitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{r: io.LimitReader(resp.Body, maxJWKSBytes+1), c: resp.Body}
	return resp, nil
}

type limitedBody struct {
	r io.Reader
	c io.Closer
	n int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > maxJWKSBytes {
		return n, errors.New("jwtverify: JWKS response larger than 1 MiB")
	}
	return n, err
}

func (b *limitedBody) Close() error { return b.c.Close() }

// Close stops the JWKS refresh goroutine. It is idempotent and always
// returns nil; Verify keeps working with the keys already fetched.
func (v *Verifier) Close() error {
	v.closeOnce.Do(v.cancel)
	return nil
}

// Verify checks token and returns its claims.
//
//   - valid: claims, nil.
//   - correctly signed and otherwise valid but expired: claims AND an error
//     wrapping ErrExpired.
//   - anything else: nil and an error wrapping ErrInvalid.
//
// An expired token with a bad signature, a wrong issuer or any other defect
// is ErrInvalid, never ErrExpired.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if err := v.precheck(token); err != nil {
		return nil, err
	}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(token, claims, v.keyFunc)
	expired := false
	if err != nil {
		// Claims are validated only after the signature verified, so
		// ErrTokenInvalidClaims proves the signature is good.
		if !errors.Is(err, jwt.ErrTokenInvalidClaims) || !errors.Is(err, jwt.ErrTokenExpired) || !v.validJustBeforeExpiry(claims) {
			return nil, invalid(err)
		}
		expired = true
	}
	c, err := v.claims(claims)
	if err != nil {
		return nil, err
	}
	if expired {
		return c, fmt.Errorf("jwtverify: %w", ErrExpired)
	}
	return c, nil
}

// precheck refuses oversized or non-JWS-compact input in one pass over the
// string and without allocating, so a huge header costs nothing.
func (v *Verifier) precheck(token string) error {
	switch {
	case token == "":
		return fmt.Errorf("jwtverify: %w: empty token", ErrInvalid)
	case len(token) > v.maxSize:
		return fmt.Errorf("jwtverify: %w: token is %d bytes, limit %d", ErrInvalid, len(token), v.maxSize)
	}
	dots := 0
	for i := 0; i < len(token); i++ {
		c := token[i]
		switch {
		case c == '.':
			dots++
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return fmt.Errorf("jwtverify: %w: %w: not base64url", ErrInvalid, jwt.ErrTokenMalformed)
		}
	}
	if dots != 2 {
		return fmt.Errorf("jwtverify: %w: %w: want 3 segments", ErrInvalid, jwt.ErrTokenMalformed)
	}
	return nil
}

// validJustBeforeExpiry re-runs every claim check at the instant before
// "exp": a token that passes was only expired, and may be refreshed.
func (v *Verifier) validJustBeforeExpiry(claims jwt.MapClaims) bool {
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return false
	}
	at := exp.Add(-time.Millisecond)
	opts := append(slices.Clone(v.valOpts), jwt.WithTimeFunc(func() time.Time { return at }))
	return jwt.NewValidator(opts...).Validate(claims) == nil
}

// invalid maps a golang-jwt error to ErrInvalid plus the most specific jwt
// sentinel. The jwt error text itself is dropped: it can quote decoded
// header or key-lookup details taken from the token.
func invalid(err error) error {
	for _, s := range []error{
		jwt.ErrTokenMalformed,
		jwt.ErrTokenRequiredClaimMissing,
		jwt.ErrTokenInvalidIssuer,
		jwt.ErrTokenInvalidAudience,
		jwt.ErrTokenNotValidYet,
		jwt.ErrInvalidType,
		jwt.ErrTokenExpired,
		jwt.ErrTokenUnverifiable,
		jwt.ErrTokenSignatureInvalid,
		jwt.ErrTokenInvalidClaims,
	} {
		if errors.Is(err, s) {
			return fmt.Errorf("jwtverify: %w: %w", ErrInvalid, s)
		}
	}
	return fmt.Errorf("jwtverify: %w", ErrInvalid)
}

func (v *Verifier) claims(m jwt.MapClaims) (*Claims, error) {
	exp, err := m.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, fmt.Errorf("jwtverify: %w: %w: exp", ErrInvalid, jwt.ErrTokenRequiredClaimMissing)
	}
	id, err := userID(m[v.userClaim])
	if err != nil {
		return nil, fmt.Errorf("jwtverify: %w: claim %q: %w", ErrInvalid, v.userClaim, err)
	}
	return &Claims{UserID: id, ExpiresAt: exp.Time, Raw: m}, nil
}

func userID(c any) (string, error) {
	var id string
	switch c := c.(type) {
	case nil:
		return "", jwt.ErrTokenRequiredClaimMissing
	case string:
		id = c
	case interface{ Int64() (int64, error) }: // json.Number
		n := c.(fmt.Stringer).String()
		if !isInteger(n) {
			return "", errors.New("user ID number is not an integer")
		}
		id = n
	default:
		return "", errors.New("user ID is neither a string nor an integer")
	}
	if err := store.ValidateUserID(id); err != nil {
		return "", errors.New("user ID is empty, too long or not printable")
	}
	return id, nil
}

// isInteger reports whether a JSON number is written as an integer, so an ID
// like 1e3 or 1.0 is refused rather than turned into a different string.
func isInteger(n string) bool {
	n = strings.TrimPrefix(n, "-")
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return true
}

// errNoKey is returned by lookupKey; the parser wraps it in
// jwt.ErrTokenUnverifiable and Verify drops its text.
var errNoKey = errors.New("no key for this token")

// lookupKey is the jwt.Keyfunc. The parser has already checked "alg" against
// the allow-list; here only keys of the algorithm's own type are offered.
func (v *Verifier) lookupKey(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		// RFC 7515 4.1.11: extensions we do not understand must be refused.
		return nil, errors.New("unsupported crit header")
	}
	alg := t.Method.Alg()
	var keys []jwt.VerificationKey
	if knownAlgs[alg] == familyHMAC {
		for _, s := range v.hmac {
			if keyFits(alg, s) {
				keys = append(keys, s)
			}
		}
	} else {
		if kid, ok := t.Header["kid"].(string); ok && v.jwks != nil {
			if k := v.jwksKey(alg, kid); k != nil {
				keys = append(keys, k)
			}
		}
		for _, k := range v.static {
			if keyFits(alg, k) {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return nil, errNoKey
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// jwksKey returns the JWKS key named kid if it fits alg. An unknown kid may
// trigger a rate-limited re-fetch, bounded by the JWKS timeout and by Close.
// It applies keyfunc's checks (the JWK's "alg" must match when present) and
// ours: no encryption keys, no symmetric keys, the key type must fit alg.
func (v *Verifier) jwksKey(alg, kid string) any {
	if kid == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(v.life, v.jwksWait)
	defer cancel()
	jwk, err := v.jwks.Storage().KeyRead(ctx, kid)
	if err != nil {
		return nil
	}
	m := jwk.Marshal()
	if a := m.ALG.String(); a != "" && a != alg {
		return nil
	}
	if m.USE == jwkset.UseEnc {
		return nil
	}
	k := jwk.Key()
	if _, symmetric := k.([]byte); symmetric {
		// A secret published in a key set is no secret.
		return nil
	}
	if pk, ok := k.(interface{ Public() crypto.PublicKey }); ok {
		k = pk.Public() // a set that wrongly publishes private keys
	}
	if !keyFits(alg, k) {
		return nil
	}
	return k
}
