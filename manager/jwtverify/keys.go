package jwtverify

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// minRSABits is the smallest RSA modulus accepted for a configured public key.
// 1024-bit RSA is breakable by well-funded attackers; 2048 is the NIST floor.
const minRSABits = 2048

// hmacMinLen returns the smallest secret RFC 7518 section 3.2 allows for an
// HMAC algorithm: a key at least as long as the hash output. A shorter
// secret could be brute-forced offline from any token it signed.
func hmacMinLen(alg string) int {
	switch alg {
	case "HS256":
		return 32
	case "HS384":
		return 48
	case "HS512":
		return 64
	}
	return 0
}

// algFamily groups algorithms by the key type that may verify them. A key is
// only ever offered to algorithms of its own family, which is what defeats
// the classic confusion attack (HS256 "signed" with an RSA public key).
type algFamily int

const (
	familyNone algFamily = iota
	familyHMAC
	familyRSA // RS* and PS*
	familyECDSA
	familyEd25519
)

// knownAlgs maps every algorithm this package can verify to its family.
// "none" is deliberately absent: it can never be allowed.
var knownAlgs = map[string]algFamily{
	"HS256": familyHMAC, "HS384": familyHMAC, "HS512": familyHMAC,
	"RS256": familyRSA, "RS384": familyRSA, "RS512": familyRSA,
	"PS256": familyRSA, "PS384": familyRSA, "PS512": familyRSA,
	"ES256": familyECDSA, "ES384": familyECDSA, "ES512": familyECDSA,
	"EdDSA": familyEd25519,
}

// ecdsaAlgCurve is the only curve each ES algorithm may use (RFC 7518 3.4).
var ecdsaAlgCurve = map[string]elliptic.Curve{
	"ES256": elliptic.P256(),
	"ES384": elliptic.P384(),
	"ES512": elliptic.P521(),
}

// algsForKey lists the algorithms a public key can verify.
func algsForKey(k any) []string {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		for alg, c := range ecdsaAlgCurve {
			if k.Curve == c {
				return []string{alg}
			}
		}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	}
	return nil
}

// keyFits reports whether key k may verify a token signed with alg. It is
// checked for static keys and for keys served by a JWKS alike.
func keyFits(alg string, k any) bool {
	switch knownAlgs[alg] {
	case familyHMAC:
		b, ok := k.([]byte)
		return ok && len(b) >= hmacMinLen(alg)
	case familyRSA:
		r, ok := k.(*rsa.PublicKey)
		return ok && r.N.BitLen() >= minRSABits // JWKS keys are not checked at New
	case familyECDSA:
		e, ok := k.(*ecdsa.PublicKey)
		return ok && e.Curve == ecdsaAlgCurve[alg]
	case familyEd25519:
		e, ok := k.(ed25519.PublicKey)
		return ok && len(e) == ed25519.PublicKeySize
	}
	return false
}

// parsePEMKeys reads every PEM block of data as a public key or a
// certificate's public key. Private keys are refused rather than silently
// used: the verifier never needs one, and a private key in the verifier's
// configuration is usually a mistake worth surfacing.
func parsePEMKeys(data []byte) ([]any, error) {
	var keys []any
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var (
			k   any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			k, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			cert, err = x509.ParseCertificate(block.Bytes)
			if err == nil {
				k = cert.PublicKey
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("PEM block is a private key; configure the public key instead")
		default:
			return nil, fmt.Errorf("unsupported PEM block type %q", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", block.Type, err)
		}
		if err := checkPublicKey(k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block found")
	}
	return keys, nil
}

func checkPublicKey(k any) error {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key is %d bits, minimum %d", k.N.BitLen(), minRSABits)
		}
	case *ecdsa.PublicKey:
		if algsForKey(k) == nil {
			return fmt.Errorf("unsupported ECDSA curve %s", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("unsupported public key type %T", k)
	}
	return nil
}
