package jwtverify_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessiond/sessiond/manager/jwtverify"
)

// benchVerify measures Verify of a valid token with only the signing key
// configured (issuer and audience checks on), the manager's JWT-path cost.
func benchVerify(b *testing.B, cfg jwtverify.Config, m jwt.SigningMethod, key any) {
	cfg.Issuer, cfg.Audience = issuer, audience
	v := newVerifier(b, cfg)
	tok := sign(b, m, key, claims("u1"), nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyHS256(b *testing.B) {
	benchVerify(b, jwtverify.Config{HMACSecrets: [][]byte{secret}}, jwt.SigningMethodHS256, secret)
}

func BenchmarkVerifyRS256(b *testing.B) {
	testKeys(b)
	benchVerify(b, jwtverify.Config{PublicKeysPEM: [][]byte{pemPublic(b, &rsaKey.PublicKey)}}, jwt.SigningMethodRS256, rsaKey)
}

func BenchmarkVerifyES256(b *testing.B) {
	testKeys(b)
	benchVerify(b, jwtverify.Config{PublicKeysPEM: [][]byte{pemPublic(b, &ecKey.PublicKey)}}, jwt.SigningMethodES256, ecKey)
}

func BenchmarkVerifyEdDSA(b *testing.B) {
	testKeys(b)
	benchVerify(b, jwtverify.Config{PublicKeysPEM: [][]byte{pemPublic(b, edKey.Public())}}, jwt.SigningMethodEdDSA, edKey)
}

// BenchmarkVerifyOversize is the cost of refusing a 1 MB token of dots.
func BenchmarkVerifyOversize(b *testing.B) {
	v := newVerifier(b, jwtverify.Config{HMACSecrets: [][]byte{secret}})
	tok := strings.Repeat(".", 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(tok); !errors.Is(err, jwtverify.ErrInvalid) {
			b.Fatal(err)
		}
	}
}
