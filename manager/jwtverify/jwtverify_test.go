package jwtverify_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sessiond/sessiond/manager/jwtverify"
)

func TestMain(m *testing.M) {
	// The JWKS refresh goroutine must end with Close.
	goleak.VerifyTestMain(m)
}

const (
	issuer   = "https://issuer.example"
	audience = "sessiond"
)

var (
	secret    = []byte("0123456789abcdef0123456789abcdef")                 // 32 bytes: HS256 only
	secret48  = []byte("0123456789abcdef0123456789abcdef0123456789abcdef") // HS256/384
	oldSecret = []byte("ffffffffffffffffffffffffffffffff")                 // rotated-out secret

	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	ec384Key *ecdsa.PrivateKey
	edKey    ed25519.PrivateKey
)

// testKeys generates the asymmetric keys once: RSA generation is slow under -race.
func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		ec384Key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		if err != nil {
			panic(err)
		}
		_, edKey, err = ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err)
		}
	})
}

func pemPublic(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func pemCert(t testing.TB, priv *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// claims returns valid claims for user u; edit the map to break them.
func claims(u any) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub": u,
		"iss": issuer,
		"aud": audience,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	require.NoError(t, err)
	return s
}

func newVerifier(t testing.TB, cfg jwtverify.Config) *jwtverify.Verifier {
	t.Helper()
	v, err := jwtverify.New(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, v.Close()) })
	return v
}

// allKeysConfig trusts every test key, with issuer and audience checks on.
func allKeysConfig(t testing.TB) jwtverify.Config {
	t.Helper()
	testKeys(t)
	return jwtverify.Config{
		HMACSecrets: [][]byte{oldSecret, secret, secret48},
		PublicKeysPEM: [][]byte{
			pemPublic(t, &rsaKey.PublicKey),
			pemCert(t, ecKey), // certificates work as well as bare keys
			pemPublic(t, &ec384Key.PublicKey),
			pemPublic(t, edKey.Public()),
		},
		Issuer:   issuer,
		Audience: audience,
	}
}

// b64 helpers to forge tokens by hand.
func seg(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

func replacePayload(t testing.TB, token string, c jwt.MapClaims) string {
	t.Helper()
	parts := strings.Split(token, ".")
	parts[1] = seg(t, c)
	return strings.Join(parts, ".")
}

func flipSignature(token string) string {
	i := strings.LastIndexByte(token, '.') + 3 // inside the signature, away from the padding bits at its end
	b := []byte(token)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func TestVerify(t *testing.T) {
	cfg := allKeysConfig(t)
	v := newVerifier(t, cfg)

	rsaPEM := pemPublic(t, &rsaKey.PublicKey)
	expired := claims("u1")
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	expiredWrongIss := claims("u1")
	expiredWrongIss["exp"] = time.Now().Add(-time.Hour).Unix()
	expiredWrongIss["iss"] = "https://evil.example"
	noExp := claims("u1")
	delete(noExp, "exp")
	noSub := claims("u1")
	delete(noSub, "sub")
	wrongIss := claims("u1")
	wrongIss["iss"] = "https://evil.example"
	wrongAud := claims("u1")
	wrongAud["aud"] = []string{"other"}
	future := claims("u1")
	future["nbf"] = time.Now().Add(time.Hour).Unix()
	withinLeeway := claims("u1")
	withinLeeway["exp"] = time.Now().Add(-2 * time.Second).Unix()
	stringExp := claims("u1")
	stringExp["exp"] = "tomorrow"
	hsToken := sign(t, jwt.SigningMethodHS256, secret, claims("u1"), nil)
	tampered := replacePayload(t, hsToken, claims("admin"))

	tests := []struct {
		name    string
		token   string
		wantErr error // nil, ErrInvalid or ErrExpired
		also    error // a jwt sentinel the error must also match
		wantID  string
	}{
		{name: "HS256", token: hsToken, wantID: "u1"},
		{name: "HS256 with a rotated-out secret still configured", token: sign(t, jwt.SigningMethodHS256, oldSecret, claims("u1"), nil), wantID: "u1"},
		{name: "HS384", token: sign(t, jwt.SigningMethodHS384, secret48, claims("u1"), nil), wantID: "u1"},
		{name: "RS256", token: sign(t, jwt.SigningMethodRS256, rsaKey, claims("u1"), nil), wantID: "u1"},
		{name: "PS256", token: sign(t, jwt.SigningMethodPS256, rsaKey, claims("u1"), nil), wantID: "u1"},
		{name: "ES256 (key from a certificate)", token: sign(t, jwt.SigningMethodES256, ecKey, claims("u1"), nil), wantID: "u1"},
		{name: "ES384", token: sign(t, jwt.SigningMethodES384, ec384Key, claims("u1"), nil), wantID: "u1"},
		{name: "EdDSA", token: sign(t, jwt.SigningMethodEdDSA, edKey, claims("u1"), nil), wantID: "u1"},
		{name: "numeric user ID kept exact", token: sign(t, jwt.SigningMethodHS256, secret, claims(json.Number("9007199254740993")), nil), wantID: "9007199254740993"},
		{name: "expired within leeway", token: sign(t, jwt.SigningMethodHS256, secret, withinLeeway, nil), wantID: "u1"},

		{name: "tampered payload", token: tampered, wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenSignatureInvalid},
		{name: "tampered signature", token: flipSignature(hsToken), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenSignatureInvalid},
		{name: "alg none", token: sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims("u1"), nil), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenSignatureInvalid},
		{name: "HS384 signed with a secret too short for HS384", token: sign(t, jwt.SigningMethodHS384, secret, claims("u1"), nil), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenSignatureInvalid},
		{name: "ES256 signed by the P-384 key", token: forgeES256WithP384(t), wantErr: jwtverify.ErrInvalid},
		{name: "HS256 signed with the RSA public key PEM", token: sign(t, jwt.SigningMethodHS256, rsaPEM, claims("u1"), nil), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenSignatureInvalid},
		{name: "wrong issuer", token: sign(t, jwt.SigningMethodHS256, secret, wrongIss, nil), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenInvalidIssuer},
		{name: "wrong audience", token: sign(t, jwt.SigningMethodHS256, secret, wrongAud, nil), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenInvalidAudience},
		{name: "missing exp", token: sign(t, jwt.SigningMethodHS256, secret, noExp, nil), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenRequiredClaimMissing},
		{name: "exp not a number", token: sign(t, jwt.SigningMethodHS256, secret, stringExp, nil), wantErr: jwtverify.ErrInvalid, also: jwt.ErrInvalidType},
		{name: "expired", token: sign(t, jwt.SigningMethodRS256, rsaKey, expired, nil), wantErr: jwtverify.ErrExpired, wantID: "u1"},
		{name: "expired with a bad signature", token: flipSignature(sign(t, jwt.SigningMethodHS256, secret, expired, nil)), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenSignatureInvalid},
		{name: "expired with a forged payload", token: replacePayload(t, hsToken, expired), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenSignatureInvalid},
		{name: "expired and wrong issuer", token: sign(t, jwt.SigningMethodHS256, secret, expiredWrongIss, nil), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenInvalidIssuer},
		{name: "not before in the future", token: sign(t, jwt.SigningMethodHS256, secret, future, nil), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenNotValidYet},
		{name: "oversize", token: sign(t, jwt.SigningMethodHS256, secret, bigClaims(), nil), wantErr: jwtverify.ErrInvalid},
		{name: "garbage", token: "not a jwt at all", wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenMalformed},
		{name: "garbage with two dots", token: "abc.def.ghi", wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenMalformed},
		{name: "four segments", token: hsToken + ".x", wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenMalformed},
		{name: "padded base64", token: strings.Replace(hsToken, ".", "=.", 1), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenMalformed},
		{name: "empty", token: "", wantErr: jwtverify.ErrInvalid},
		{name: "missing user ID claim", token: sign(t, jwt.SigningMethodHS256, secret, noSub, nil), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenRequiredClaimMissing},
		{name: "fractional user ID", token: sign(t, jwt.SigningMethodHS256, secret, claims(json.Number("1.5")), nil), wantErr: jwtverify.ErrInvalid},
		{name: "user ID with control characters", token: sign(t, jwt.SigningMethodHS256, secret, claims("a\nb"), nil), wantErr: jwtverify.ErrInvalid},
		{name: "crit header", token: sign(t, jwt.SigningMethodHS256, secret, claims("u1"), map[string]any{"crit": []string{"exp"}}), wantErr: jwtverify.ErrInvalid, also: jwt.ErrTokenUnverifiable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(tt.token)
			switch tt.wantErr {
			case nil:
				require.NoError(t, err, "Verify(%s)", tt.name)
			default:
				require.ErrorIs(t, err, tt.wantErr, "Verify(%s) = %v, want %v", tt.name, err, tt.wantErr)
				other := jwtverify.ErrExpired
				if tt.wantErr == jwtverify.ErrExpired {
					other = jwtverify.ErrInvalid
				}
				require.NotErrorIs(t, err, other)
				if tt.also != nil {
					require.ErrorIs(t, err, tt.also)
				}
				requireNoTokenInError(t, err, tt.token)
			}
			if tt.wantErr == jwtverify.ErrInvalid {
				require.Nil(t, c)
				return
			}
			require.NotNil(t, c)
			require.Equal(t, tt.wantID, c.UserID)
			require.False(t, c.ExpiresAt.IsZero())
			require.Equal(t, issuer, c.Raw["iss"])
		})
	}
}

// forgeES256WithP384 signs an ES256-labelled token with the P-384 key: the
// curve must match the algorithm, so no configured key may verify it.
func forgeES256WithP384(t testing.TB) string {
	t.Helper()
	tok := sign(t, jwt.SigningMethodES384, ec384Key, claims("u1"), nil)
	parts := strings.Split(tok, ".")
	parts[0] = seg(t, map[string]string{"alg": "ES256", "typ": "JWT"})
	sig, err := jwt.SigningMethodES384.Sign(parts[0]+"."+parts[1], ec384Key)
	require.NoError(t, err)
	return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func bigClaims() jwt.MapClaims {
	c := claims("u1")
	c["pad"] = strings.Repeat("x", 9<<10)
	return c
}

// requireNoTokenInError checks that no recognisable piece of the token
// leaked into the error text.
func requireNoTokenInError(t *testing.T, err error, token string) {
	t.Helper()
	msg := err.Error()
	for _, part := range strings.Split(token, ".") {
		if len(part) >= 8 {
			require.NotContains(t, msg, part)
		}
	}
}

// TestAlgorithmConfusion is the classic attack: the attacker knows the RSA
// public key and "signs" an HS256 token with its PEM bytes as the secret.
// Even when the operator allows HS256 (because an HMAC secret is also
// configured), the RSA key is never offered to HMAC.
func TestAlgorithmConfusion(t *testing.T) {
	testKeys(t)
	rsaPEM := pemPublic(t, &rsaKey.PublicKey)
	forged := sign(t, jwt.SigningMethodHS256, rsaPEM, claims("admin"), nil)
	der, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	require.NoError(t, err)
	forgedDER := sign(t, jwt.SigningMethodHS256, der, claims("admin"), nil)

	for name, cfg := range map[string]jwtverify.Config{
		"RSA key only":                   {PublicKeysPEM: [][]byte{rsaPEM}},
		"RSA key and HMAC secret":        {PublicKeysPEM: [][]byte{rsaPEM}, HMACSecrets: [][]byte{secret}},
		"HS256 explicitly allowed too":   {PublicKeysPEM: [][]byte{rsaPEM}, HMACSecrets: [][]byte{secret}, Algorithms: []string{"RS256", "HS256"}},
		"RSA key, RS256 only in allowed": {PublicKeysPEM: [][]byte{rsaPEM}, Algorithms: []string{"RS256"}},
	} {
		t.Run(name, func(t *testing.T) {
			v := newVerifier(t, cfg)
			for _, tok := range []string{forged, forgedDER} {
				c, err := v.Verify(tok)
				require.ErrorIs(t, err, jwtverify.ErrInvalid)
				require.Nil(t, c)
			}
			// The verifier does work for genuine RS256 tokens.
			_, err := v.Verify(sign(t, jwt.SigningMethodRS256, rsaKey, claims("u1"), nil))
			require.NoError(t, err)
		})
	}
}

func TestAllowListRestrictsAlgorithms(t *testing.T) {
	testKeys(t)
	v := newVerifier(t, jwtverify.Config{
		HMACSecrets:   [][]byte{secret48},
		PublicKeysPEM: [][]byte{pemPublic(t, &rsaKey.PublicKey)},
		Algorithms:    []string{"RS256"},
	})
	for name, tok := range map[string]string{
		"HS256": sign(t, jwt.SigningMethodHS256, secret48, claims("u1"), nil),
		"PS256": sign(t, jwt.SigningMethodPS256, rsaKey, claims("u1"), nil),
		"RS512": sign(t, jwt.SigningMethodRS512, rsaKey, claims("u1"), nil),
	} {
		_, err := v.Verify(tok)
		require.ErrorIs(t, err, jwtverify.ErrInvalid, "Verify(%s) with only RS256 allowed", name)
	}
	_, err := v.Verify(sign(t, jwt.SigningMethodRS256, rsaKey, claims("u1"), nil))
	require.NoError(t, err)
}

func TestIssuerAndAudienceOptional(t *testing.T) {
	v := newVerifier(t, jwtverify.Config{HMACSecrets: [][]byte{secret}})
	c := claims("u1")
	delete(c, "iss")
	delete(c, "aud")
	got, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, c, nil))
	require.NoError(t, err)
	require.Equal(t, "u1", got.UserID)
}

func TestUserIDClaimAndLeeway(t *testing.T) {
	v := newVerifier(t, jwtverify.Config{
		HMACSecrets: [][]byte{secret},
		UserIDClaim: "user_id",
		Leeway:      -1, // none
	})
	c := claims("ignored")
	c["user_id"] = json.Number("42")
	got, err := v.Verify(sign(t, jwt.SigningMethodHS256, secret, c, nil))
	require.NoError(t, err)
	require.Equal(t, "42", got.UserID)

	c["exp"] = time.Now().Add(-2 * time.Second).Unix()
	got, err = v.Verify(sign(t, jwt.SigningMethodHS256, secret, c, nil))
	require.ErrorIs(t, err, jwtverify.ErrExpired, "no leeway: 2 s late is expired")
	require.Equal(t, "42", got.UserID)
}

func TestNowOption(t *testing.T) {
	tok := sign(t, jwt.SigningMethodHS256, secret, claims("u1"), nil)
	v := newVerifier(t, jwtverify.Config{
		HMACSecrets: [][]byte{secret},
		Now:         func() time.Time { return time.Now().Add(2 * time.Hour) },
	})
	c, err := v.Verify(tok)
	require.ErrorIs(t, err, jwtverify.ErrExpired)
	require.Equal(t, "u1", c.UserID)
}

func TestMaxTokenSize(t *testing.T) {
	tok := sign(t, jwt.SigningMethodHS256, secret, claims("u1"), nil)
	v := newVerifier(t, jwtverify.Config{HMACSecrets: [][]byte{secret}, MaxTokenSize: len(tok)})
	_, err := v.Verify(tok)
	require.NoError(t, err)

	v = newVerifier(t, jwtverify.Config{HMACSecrets: [][]byte{secret}, MaxTokenSize: len(tok) - 1})
	_, err = v.Verify(tok)
	require.ErrorIs(t, err, jwtverify.ErrInvalid)
	require.Contains(t, err.Error(), "limit")
}

// TestHugeTokenBoundedMemory feeds a 1 MB token of dots: it must be refused
// before any decoding, without allocating anything near its size.
func TestHugeTokenBoundedMemory(t *testing.T) {
	v := newVerifier(t, jwtverify.Config{HMACSecrets: [][]byte{secret}})
	huge := strings.Repeat(".", 1<<20)
	for _, tok := range []string{huge, "a" + huge, strings.Repeat("a", 1<<20)} {
		_, err := v.Verify(tok)
		require.ErrorIs(t, err, jwtverify.ErrInvalid)
	}

	// A 1 MB string of three base64 segments would make a parser decode
	// ~750 KB; it must be refused by length first, just like the dots.
	third := strings.Repeat("a", 1<<20/3)
	segments := third + "." + third + "." + third
	for name, tok := range map[string]string{"dots": huge, "segments": segments} {
		const runs = 50
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range runs {
			_, err := v.Verify(tok)
			require.ErrorIs(t, err, jwtverify.ErrInvalid)
		}
		runtime.ReadMemStats(&after)
		perCall := (after.TotalAlloc - before.TotalAlloc) / runs
		// Only the short error is allocated.
		require.Less(t, perCall, uint64(1<<10), "Verify(1 MB of %s) allocated %d bytes per call", name, perCall)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	testKeys(t)
	rsaPriv := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	ec224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	require.NoError(t, err)
	ec224DER, err := x509.MarshalPKIXPublicKey(&ec224.PublicKey)
	require.NoError(t, err)

	for name, cfg := range map[string]jwtverify.Config{
		"no key":                  {},
		"short HMAC secret":       {HMACSecrets: [][]byte{[]byte("secret")}},
		"empty HMAC secret":       {HMACSecrets: [][]byte{nil}},
		"not PEM":                 {PublicKeysPEM: [][]byte{[]byte("hello")}},
		"private key PEM":         {PublicKeysPEM: [][]byte{rsaPriv}},
		"corrupt PEM":             {PublicKeysPEM: [][]byte{pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")})}},
		"small RSA key":           {PublicKeysPEM: [][]byte{pemPublic(t, &small.PublicKey)}},
		"P-224 key":               {PublicKeysPEM: [][]byte{pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ec224DER})}},
		"alg none":                {HMACSecrets: [][]byte{secret}, Algorithms: []string{"none"}},
		"unknown alg":             {HMACSecrets: [][]byte{secret}, Algorithms: []string{"HS1"}},
		"alg without key":         {HMACSecrets: [][]byte{secret}, Algorithms: []string{"RS256"}},
		"HS512 with short secret": {HMACSecrets: [][]byte{secret}, Algorithms: []string{"HS512"}},
		"JWKS over http":          {JWKSURL: "http://keys.example.com/jwks.json"},
		"JWKS bad URL":            {JWKSURL: "::"},
		"JWKS unreachable":        {JWKSURL: "http://127.0.0.1:1/jwks.json"},
	} {
		v, err := jwtverify.New(context.Background(), cfg)
		require.Error(t, err, "New(%s)", name)
		require.Nil(t, v, "New(%s)", name)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	v, err := jwtverify.New(context.Background(), jwtverify.Config{HMACSecrets: [][]byte{secret}})
	require.NoError(t, err)
	require.NoError(t, v.Close())
	require.NoError(t, v.Close())
	_, err = v.Verify(sign(t, jwt.SigningMethodHS256, secret, claims("u1"), nil))
	require.NoError(t, err, "static keys keep working after Close")
}

// jwksServer serves a JWK Set that the test can replace, counting fetches.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

// jwk describes one published key with optional "alg" and "use".
type jwk struct {
	key any
	alg jwkset.ALG
	use jwkset.USE
}

func (s *jwksServer) serve(t *testing.T, keys map[string]any) {
	t.Helper()
	m := map[string]jwk{}
	for kid, k := range keys {
		m[kid] = jwk{key: k}
	}
	s.serveJWKs(t, m)
}

func (s *jwksServer) serveJWKs(t *testing.T, keys map[string]jwk) {
	t.Helper()
	var set jwkset.JWKSMarshal
	for kid, k := range keys {
		j, err := jwkset.NewJWKFromKey(k.key, jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: kid, ALG: k.alg, USE: k.use},
			Marshal:  jwkset.JWKMarshalOptions{Private: true}, // lets the test publish an "oct" key
		})
		require.NoError(t, err)
		set.Keys = append(set.Keys, j.Marshal())
	}
	b, err := json.Marshal(set)
	require.NoError(t, err)
	s.mu.Lock()
	s.body = b
	s.mu.Unlock()
}

func TestJWKSRotation(t *testing.T) {
	testKeys(t)
	srv := newJWKSServer(t)
	srv.serve(t, map[string]any{"k1": &rsaKey.PublicKey})
	v := newVerifier(t, jwtverify.Config{JWKSURL: srv.URL, HTTPClient: srv.Client()})
	require.EqualValues(t, 1, srv.fetches.Load(), "New fetches the JWKS once")

	tok1 := sign(t, jwt.SigningMethodRS256, rsaKey, claims("u1"), map[string]any{"kid": "k1"})
	c, err := v.Verify(tok1)
	require.NoError(t, err)
	require.Equal(t, "u1", c.UserID)
	require.EqualValues(t, 1, srv.fetches.Load(), "a known kid needs no fetch")

	// The issuer rotates to a new key; the next token names the new kid.
	srv.serve(t, map[string]any{"k2": &ecKey.PublicKey})
	tok2 := sign(t, jwt.SigningMethodES256, ecKey, claims("u2"), map[string]any{"kid": "k2"})
	c, err = v.Verify(tok2)
	require.NoError(t, err)
	require.Equal(t, "u2", c.UserID)
	require.EqualValues(t, 2, srv.fetches.Load(), "the unknown kid caused one re-fetch")

	// The old key was removed from the set: its tokens no longer verify.
	_, err = v.Verify(tok1)
	require.ErrorIs(t, err, jwtverify.ErrInvalid)

	// Forged kids cannot make Verify hammer (or wait for) the key server:
	// the refresh limiter is spent, so they are refused at once.
	start := time.Now()
	for i := range 5 {
		forged := sign(t, jwt.SigningMethodES256, ecKey, claims("u2"), map[string]any{"kid": "nope" + string(rune('a'+i))})
		_, err = v.Verify(forged)
		require.ErrorIs(t, err, jwtverify.ErrInvalid)
	}
	require.EqualValues(t, 2, srv.fetches.Load())
	require.Less(t, time.Since(start), 5*time.Second)
}

func TestJWKSRules(t *testing.T) {
	testKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	srv := newJWKSServer(t)
	srv.serveJWKs(t, map[string]jwk{
		"rsa":      {key: &rsaKey.PublicKey},
		"rsa-ps":   {key: &rsaKey.PublicKey, alg: jwkset.AlgPS256, use: jwkset.UseSig},
		"rsa-enc":  {key: &rsaKey.PublicKey, use: jwkset.UseEnc},
		"rsa-1024": {key: &small.PublicKey},
		"ec":       {key: &ecKey.PublicKey},
		"oct":      {key: secret48}, // a "secret" published in a key set
	})
	v := newVerifier(t, jwtverify.Config{
		JWKSURL:     srv.URL,
		HTTPClient:  srv.Client(),
		HMACSecrets: [][]byte{secret}, // HS256 is allowed, but only with this secret
	})
	for name, tok := range map[string]string{
		"RS256":                 sign(t, jwt.SigningMethodRS256, rsaKey, claims("u1"), map[string]any{"kid": "rsa"}),
		"PS256 as the JWK says": sign(t, jwt.SigningMethodPS256, rsaKey, claims("u1"), map[string]any{"kid": "rsa-ps"}),
		"ES256":                 sign(t, jwt.SigningMethodES256, ecKey, claims("u1"), map[string]any{"kid": "ec"}),
	} {
		_, err := v.Verify(tok)
		require.NoError(t, err, "Verify(%s)", name)
	}

	for name, tok := range map[string]string{
		"no kid":                         sign(t, jwt.SigningMethodRS256, rsaKey, claims("u1"), nil),
		"kid of another key":             sign(t, jwt.SigningMethodRS256, rsaKey, claims("u1"), map[string]any{"kid": "ec"}),
		"ES256 under the RSA kid":        sign(t, jwt.SigningMethodES256, ecKey, claims("u1"), map[string]any{"kid": "rsa"}),
		"RS256 where the JWK says PS256": sign(t, jwt.SigningMethodRS256, rsaKey, claims("u1"), map[string]any{"kid": "rsa-ps"}),
		"encryption key":                 sign(t, jwt.SigningMethodRS256, rsaKey, claims("u1"), map[string]any{"kid": "rsa-enc"}),
		"1024-bit RSA key":               sign(t, jwt.SigningMethodRS256, small, claims("u1"), map[string]any{"kid": "rsa-1024"}),
		"HS256 with the oct key":         sign(t, jwt.SigningMethodHS256, secret48, claims("u1"), map[string]any{"kid": "oct"}),
	} {
		_, err := v.Verify(tok)
		require.ErrorIs(t, err, jwtverify.ErrInvalid, "Verify(%s)", name)
	}
}

func TestJWKSCloseStopsRefresh(t *testing.T) {
	testKeys(t)
	srv := newJWKSServer(t)
	srv.serve(t, map[string]any{"k1": &rsaKey.PublicKey})
	v, err := jwtverify.New(context.Background(), jwtverify.Config{
		JWKSURL:             srv.URL,
		HTTPClient:          srv.Client(),
		JWKSRefreshInterval: 20 * time.Millisecond,
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return srv.fetches.Load() >= 3 }, 5*time.Second, 10*time.Millisecond, "background refresh runs")
	require.NoError(t, v.Close())
	// goleak (TestMain) proves the goroutine ended; also no more fetches.
	require.NoError(t, goleak.Find(goleak.IgnoreCurrent()))
	time.Sleep(60 * time.Millisecond)
	n := srv.fetches.Load()
	time.Sleep(60 * time.Millisecond)
	require.Equal(t, n, srv.fetches.Load())
}

func TestNewContextBoundsInitialFetch(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	v, err := jwtverify.New(ctx, jwtverify.Config{JWKSURL: srv.URL})
	require.Error(t, err)
	require.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled), "New = %v", err)
	require.Nil(t, v)
}

func TestJWKSResponseSizeBounded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"keys":[],"pad":"`))
		_, _ = w.Write([]byte(strings.Repeat("x", 2<<20)))
		_, _ = w.Write([]byte(`"}`))
	}))
	t.Cleanup(srv.Close)
	_, err := jwtverify.New(context.Background(), jwtverify.Config{JWKSURL: srv.URL})
	require.Error(t, err)
	require.Contains(t, err.Error(), "larger than 1 MiB")
}
