package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// A session token is the only secret of a session. It is
//
//	base64url(32 random bytes || 2-byte user tag), no padding: 46 characters
//
// The 32 bytes come from crypto/rand. The user tag is the first two bytes of
// SHA-256 of the user ID: it lets every key of one user (the sessions and the
// user's index) share a Redis Cluster hash slot, so "sign out everywhere" is
// one atomic script even on a cluster, and it lets the memory store shard by
// user. Sixteen bits of a hash say nothing useful about the user to an
// outsider: tens of thousands of user IDs share each tag.
//
// A session ID is
//
//	hex(user tag) || base64url(SHA-256(token)): 4 + 43 = 47 characters
//
// It is safe to store, log and show; it cannot be turned back into the token.
const (
	secretLen = 32
	tagLen    = 2
	// TokenLen is the length of every valid token string.
	TokenLen = (secretLen*8 + tagLen*8 + 5) / 6 // 46
	// IDLen is the length of every valid session ID.
	IDLen = 2*tagLen + 43 // 47
	// TagLen is the length of the user tag prefix of an ID, see UserTag.
	TagLen = 2 * tagLen
)

var (
	b64 = base64.RawURLEncoding
	// strict refuses an encoding whose last character has non-zero spare
	// bits, so one secret has exactly one token string, and one ID.
	strict = base64.RawURLEncoding.Strict()
)

// NewToken returns a fresh session token for a session of userID.
func NewToken(userID string) (string, error) {
	if err := validUserID(userID); err != nil {
		return "", err
	}
	var raw [secretLen + tagLen]byte
	if _, err := rand.Read(raw[:secretLen]); err != nil {
		return "", fmt.Errorf("store: new token: %w", err)
	}
	sum := sha256.Sum256([]byte(userID))
	copy(raw[secretLen:], sum[:tagLen])
	return b64.EncodeToString(raw[:]), nil
}

// IDFromToken validates token and returns the ID its session is stored
// under. A malformed token (wrong length, wrong alphabet, oversize) is
// rejected with ErrInvalid; the error never contains the token.
func IDFromToken(token string) (string, error) {
	if len(token) != TokenLen {
		return "", fmt.Errorf("%w: token must be %d characters", ErrInvalid, TokenLen)
	}
	// Copied into an array so that decoding does not allocate: this runs
	// on every request.
	var src [TokenLen]byte
	copy(src[:], token)
	var raw [secretLen + tagLen]byte
	if n, err := strict.Decode(raw[:], src[:]); err != nil || n != len(raw) {
		return "", fmt.Errorf("%w: token is not canonical base64url", ErrInvalid)
	}
	var id [IDLen]byte
	hex.Encode(id[:TagLen], raw[secretLen:])
	sum := sha256.Sum256(src[:])
	b64.Encode(id[TagLen:], sum[:])
	return string(id[:]), nil
}

// UserTag returns the 4-hex-character tag that prefixes the IDs of every
// session of userID (and names the Redis Cluster hash slot of the user).
func UserTag(userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return hex.EncodeToString(sum[:tagLen])
}

// ValidID reports whether id has the shape of a session ID. It says nothing
// about whether such a session exists.
func ValidID(id string) bool {
	if len(id) != IDLen {
		return false
	}
	for i := 0; i < TagLen; i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	for i := TagLen; i < IDLen; i++ {
		if !isB64URL(id[i]) {
			return false
		}
	}
	// 43 characters carry 258 bits for a 256-bit hash: the last character
	// must leave its two spare bits zero.
	return b64Val(id[IDLen-1])&3 == 0
}

func isB64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

func b64Val(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	default:
		return 63
	}
}
