package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/sessiond/sessiond/client"
)

// minAPIKeyLen refuses keys short enough to guess; generate keys with
// `openssl rand -base64 32`.
const minAPIKeyLen = 16

// authenticator checks that a request comes from an allowed caller: an API
// key, a verified client certificate (mTLS), or both when both are
// configured. With neither configured every caller is allowed (the memory
// store in development, or --insecure-no-auth).
type authenticator struct {
	// keys is the current set of API keys; --api-key-file reloads swap it
	// whole (see watchAPIKeys), so a request sees one set or the other.
	keys atomic.Pointer[keySet]
	// requireCert: the TLS handshake already demanded a certificate from
	// --client-ca; the check here guards against a listener without it.
	requireCert bool
}

// keySet is one generation of API keys.
type keySet struct {
	// sums are SHA-256 digests of the keys. Comparing digests of equal
	// length in constant time tells an attacker nothing about a key's
	// length or its prefix.
	sums [][sha256.Size]byte
	ids  []string // per key: a fingerprint safe to log and to use as a caller identity
}

func newAuthenticator(keys []string, requireCert bool) *authenticator {
	a := &authenticator{requireCert: requireCert}
	a.setKeys(keys)
	return a
}

// setKeys replaces the API keys; requests already past authenticate keep
// the identity they got.
func (a *authenticator) setKeys(keys []string) {
	ks := &keySet{}
	for _, k := range keys {
		sum := sha256.Sum256([]byte(k))
		ks.sums = append(ks.sums, sum)
		ks.ids = append(ks.ids, keyID(sum))
	}
	a.keys.Store(ks)
}

// keyID is the fingerprint of a key's digest: the first 4 bytes, in hex.
func keyID(sum [sha256.Size]byte) string { return "key:" + hex.EncodeToString(sum[:4]) }

// enabled reports whether any caller authentication is configured.
func (a *authenticator) enabled() bool { return len(a.keys.Load().sums) > 0 || a.requireCert }

// authenticate returns the caller's identity (for logs and rate limits),
// or ok=false and the reason it was refused (a metric label).
func (a *authenticator) authenticate(r *http.Request) (caller string, reason string, ok bool) {
	caller = "ip:" + remoteIP(r)
	if a.requireCert {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
			return caller, "no_client_cert", false
		}
		caller = "cert:" + r.TLS.VerifiedChains[0][0].Subject.CommonName
	}
	ks := a.keys.Load()
	if len(ks.sums) == 0 {
		return caller, "", true
	}
	presented, found := presentedKey(r)
	if !found {
		return caller, "missing_key", false
	}
	sum := sha256.Sum256([]byte(presented))
	match := -1
	// No early exit: every key is compared, so timing does not say which
	// key (or whether an early one) matched.
	for i := range ks.sums {
		if subtle.ConstantTimeCompare(sum[:], ks.sums[i][:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return caller, "wrong_key", false
	}
	return ks.ids[match], "", true
}

// presentedKey returns the API key of "Authorization: Bearer <key>" or
// "X-API-Key: <key>".
func presentedKey(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, key, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(key) != "" {
			return strings.TrimSpace(key), true
		}
		return "", false
	}
	if k := r.Header.Get(client.HeaderAPIKey); k != "" {
		return k, true
	}
	return "", false
}

// remoteIP is the peer's address. X-Forwarded-For is not trusted: any
// caller could set it to dodge the rate limit.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
