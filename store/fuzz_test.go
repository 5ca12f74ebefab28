package store_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
)

// Fuzz targets of the token and ID parsers: the first code every request's
// cookie or header reaches. Seeds (f.Add and testdata/fuzz) run as normal
// tests; fuzz with go test ./store -run '^$' -fuzz FuzzIDFromToken.

// fuzzSeedTokens are the shapes worth starting from: real tokens, each
// kind of malformed one, and one far over the limit.
func fuzzSeedTokens(f *testing.F) []string {
	tok, err := store.NewToken("alice")
	require.NoError(f, err)
	return []string{
		tok,
		tok[:store.TokenLen-1], // one short
		tok + "A",              // one long
		strings.Repeat("A", store.TokenLen-1) + "B", // non-canonical final character
		strings.Repeat("+", store.TokenLen),         // std base64, not url
		strings.Repeat("é", store.TokenLen/2),       // multi-byte runes
		"",
		strings.Repeat("A", 1<<16), // oversize
	}
}

// IDFromToken never panics, accepts only TokenLen canonical base64url
// strings, returns a ValidID deterministically, never echoes the token in
// its error, and allocates far less than a huge input's size (it is
// refused, not copied).
func FuzzIDFromToken(f *testing.F) {
	for _, s := range fuzzSeedTokens(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := store.IDFromToken(token)
		if err != nil {
			require.True(t, errors.Is(err, store.ErrInvalid), "IDFromToken error %v does not wrap ErrInvalid", err)
			require.Empty(t, id)
			if len(token) >= 8 {
				require.NotContains(t, err.Error(), token, "the error echoes the token")
			}
		} else {
			require.Len(t, token, store.TokenLen)
			require.True(t, store.ValidID(id), "IDFromToken(%q) = %q, not a ValidID", token, id)
			again, err := store.IDFromToken(token)
			require.NoError(t, err)
			require.Equal(t, id, again)
			require.NotContains(t, id, token)
		}
		if len(token) >= 1<<16 {
			// Bounded: a huge input is refused without being copied.
			got := allocatedBytes(3, func() { _, _ = store.IDFromToken(token) })
			require.Less(t, got, uint64(len(token)/4), "IDFromToken of %d bytes allocated %d bytes", len(token), got)
		}
	})
}

// allocatedBytes is how many bytes one call of f allocates, averaged over
// runs. It counts the whole process (TotalAlloc), so only a figure far
// above the background noise (a few KiB) means anything.
func allocatedBytes(runs int, f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

// ValidID never panics, and what it accepts is safe to slice into a
// Redis key (it has at least TagLen bytes) and exactly IDLen long.
func FuzzValidID(f *testing.F) {
	tok, err := store.NewToken("bob")
	require.NoError(f, err)
	id, err := store.IDFromToken(tok)
	require.NoError(f, err)
	for _, s := range []string{id, id[:store.IDLen-1], id + "x", "", "zzzz" + id[store.TagLen:], strings.Repeat("{", store.IDLen)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !store.ValidID(s) {
			return
		}
		require.Len(t, s, store.IDLen)
		require.NotContains(t, s, "{", "a valid ID could break Redis Cluster hash tags")
		require.NotContains(t, s, "}")
		require.NotContains(t, s, ":")
	})
}

// A token minted for any valid user ID parses back, and its ID carries
// that user's tag (the Redis Cluster slot of the user's keys).
func FuzzNewTokenRoundTrip(f *testing.F) {
	for _, s := range []string{"alice", "42", "user@example.com", "ü", strings.Repeat("x", store.MaxUserIDLen), "", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, userID string) {
		tok, err := store.NewToken(userID)
		if verr := store.ValidateUserID(userID); verr != nil {
			require.Error(t, err, "NewToken(%q) minted a token for a user ID the store refuses (%v)", userID, verr)
			require.Empty(t, tok)
			return
		}
		require.NoError(t, err)
		id, err := store.IDFromToken(tok)
		require.NoError(t, err)
		require.Equal(t, store.UserTag(userID), id[:store.TagLen])
	})
}
