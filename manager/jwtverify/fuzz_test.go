package jwtverify_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/manager/jwtverify"
)

// Fuzz target of the JWT step: every access token a client sends reaches
// Verify before anything else. Seeds (f.Add and testdata/fuzz) run as
// normal tests; fuzz with
// go test ./manager/jwtverify -run '^$' -fuzz FuzzVerify.

var fuzzNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const fuzzMaxTokenSize = 4096

func fuzzVerifier(t testing.TB) *jwtverify.Verifier {
	t.Helper()
	v, err := jwtverify.New(context.Background(), jwtverify.Config{
		HMACSecrets:  [][]byte{secret48},
		Issuer:       issuer,
		MaxTokenSize: fuzzMaxTokenSize,
		Now:          func() time.Time { return fuzzNow },
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func fuzzSign(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	require.NoError(t, err)
	return s
}

// Verify never panics; it accepts only a token signed with the secret, by
// an allowed algorithm, with the issuer and a user ID, that is not
// expired; every refusal wraps exactly one of ErrInvalid and ErrExpired,
// never quotes the token, and a token over MaxTokenSize is refused
// before decoding: a huge one allocates far less than its own size.
func FuzzVerify(f *testing.F) {
	good := jwt.MapClaims{"sub": "alice", "iss": issuer, "exp": fuzzNow.Add(time.Hour).Unix()}
	expired := jwt.MapClaims{"sub": "alice", "iss": issuer, "exp": fuzzNow.Add(-time.Hour).Unix()}
	valid := fuzzSign(f, jwt.SigningMethodHS256, secret48, good)
	for _, s := range []string{
		valid,
		fuzzSign(f, jwt.SigningMethodHS384, secret48, good),
		fuzzSign(f, jwt.SigningMethodHS256, secret48, expired),
		fuzzSign(f, jwt.SigningMethodHS256, oldSecret, good),                                                   // wrong key
		fuzzSign(f, jwt.SigningMethodHS256, secret48, jwt.MapClaims{"iss": issuer, "exp": good["exp"]}),        // no sub
		fuzzSign(f, jwt.SigningMethodHS256, secret48, jwt.MapClaims{"sub": "alice", "iss": issuer}),            // no exp
		fuzzSign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good),                             // alg none
		fuzzSign(f, jwt.SigningMethodHS256, secret48, jwt.MapClaims{"sub": 42, "iss": issuer, "exp": 1 << 40}), // numeric sub
		valid[:len(valid)-2],
		strings.Replace(valid, ".", "..", 1),
		"", ".", "..", "a.b.c", "Bearer " + valid,
		strings.Repeat("A", fuzzMaxTokenSize+1),
		strings.Repeat("A.", 1<<16),
	} {
		f.Add(s)
	}
	v := fuzzVerifier(f)
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(token)
		if err == nil {
			require.NotNil(t, claims)
			require.NotEmpty(t, claims.UserID)
			require.True(t, claims.ExpiresAt.After(fuzzNow.Add(-jwtverify.DefaultLeeway)), "accepted an expired token")
			require.Equal(t, issuer, claims.Raw["iss"])
			return
		}
		invalid, exp := errors.Is(err, jwtverify.ErrInvalid), errors.Is(err, jwtverify.ErrExpired)
		require.True(t, invalid != exp, "Verify error %q wraps ErrInvalid=%v ErrExpired=%v, want exactly one", err, invalid, exp)
		if exp {
			require.NotNil(t, claims, "ErrExpired comes with the claims")
		}
		if len(token) >= 16 {
			require.NotContains(t, err.Error(), token, "the error quotes the token")
		}
		if len(token) > fuzzMaxTokenSize {
			require.True(t, invalid)
		}
		if len(token) >= 1<<16 {
			// Refused before decoding: a huge token is not copied or
			// decoded. TotalAlloc counts the whole process, so only a
			// figure far above the background noise means anything.
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range 3 {
				_, _ = v.Verify(token)
			}
			runtime.ReadMemStats(&after)
			got := (after.TotalAlloc - before.TotalAlloc) / 3
			require.Less(t, got, uint64(len(token)/4), "an oversize token of %d bytes allocated %d bytes", len(token), got)
		}
	})
}
