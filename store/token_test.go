package store_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
)

func TestNewTokenIsUniqueAndTagged(t *testing.T) {
	seen := make(map[string]bool)
	for i := 0; i < 1000; i++ {
		token, err := store.NewToken("user-1")
		require.NoError(t, err)
		require.Len(t, token, store.TokenLen)
		require.False(t, seen[token], "NewToken repeated a token")
		seen[token] = true

		id, err := store.IDFromToken(token)
		require.NoError(t, err)
		require.True(t, store.ValidID(id), "ValidID(IDFromToken(token)) = false")
		require.Equal(t, store.UserTag("user-1"), id[:store.TagLen])
		require.NotContains(t, id, token[:store.TokenLen-3], "the ID must not reveal the token")
	}
}

func TestNewTokenRejectsBadUserID(t *testing.T) {
	for _, tc := range []struct {
		name, userID string
		want         error
	}{
		{"empty", "", store.ErrInvalid},
		{"oversize", strings.Repeat("u", store.MaxUserIDLen+1), store.ErrTooLarge},
		{"control character", "a\nb", store.ErrInvalid},
		{"invalid UTF-8", "a\xffb", store.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token, err := store.NewToken(tc.userID)
			require.ErrorIs(t, err, tc.want)
			require.Empty(t, token)
		})
	}
}

func TestIDFromTokenIsDeterministic(t *testing.T) {
	token, err := store.NewToken("user-1")
	require.NoError(t, err)
	a, err := store.IDFromToken(token)
	require.NoError(t, err)
	b, err := store.IDFromToken(token)
	require.NoError(t, err)
	require.Equal(t, a, b)
}

func TestIDFromTokenRejectsMalformed(t *testing.T) {
	good, err := store.NewToken("user-1")
	require.NoError(t, err)
	// The last character of a 34-byte base64url string carries 2 data bits;
	// setting a spare bit yields a string that decodes to the same bytes.
	spare := good[:len(good)-1] + flipSpareBit(good[len(good)-1])

	for _, tc := range []struct{ name, token string }{
		{"empty", ""},
		{"short", good[:store.TokenLen-1]},
		{"long", good + "A"},
		{"standard base64 alphabet", good[:store.TokenLen-1] + "+"},
		{"padding", good[:store.TokenLen-2] + "=="},
		{"space", good[:10] + " " + good[11:]},
		{"non-canonical spare bits", spare},
		{"1 MB of dots", strings.Repeat(".", 1<<20)},
		{"JWT-shaped", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig-sig-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := store.IDFromToken(tc.token)
			require.ErrorIs(t, err, store.ErrInvalid)
			require.Empty(t, id)
			if len(tc.token) > 8 {
				require.NotContains(t, err.Error(), tc.token, "the error must not echo the token")
			}
		})
	}
}

// flipSpareBit returns the base64url character that differs from c only in
// its lowest bit, which a 34-byte encoding leaves unused.
func flipSpareBit(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i^1])
}

func TestValidID(t *testing.T) {
	token, err := store.NewToken("user-1")
	require.NoError(t, err)
	id, err := store.IDFromToken(token)
	require.NoError(t, err)

	require.True(t, store.ValidID(id))
	for _, bad := range []string{
		"",
		id[:store.IDLen-1],
		id + "A",
		"XYZ1" + id[store.TagLen:],          // tag is not lower-case hex
		id[:store.TagLen] + "+" + id[5:],    // outside the base64url alphabet
		id[:store.IDLen-1] + "B",            // spare bits set in the last character
		strings.Repeat("a", store.IDLen),    // shape right until the spare bits
		"session:" + id[:store.IDLen-8],     // key-injection shaped
		id[:store.TagLen] + "{" + id[5:],    // cluster hash-tag injection
		id[:store.TagLen] + "\x00" + id[5:], // NUL
	} {
		require.False(t, store.ValidID(bad), "ValidID(%q) = true, want false", bad)
	}
}

func TestIDFromTokenAllocatesOnlyTheID(t *testing.T) {
	token, err := store.NewToken("user-1")
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := store.IDFromToken(token); err != nil {
			t.Fatal(err)
		}
	})
	require.Equal(t, 1.0, allocs, "IDFromToken allocs = %v, want 1 (the returned ID)", allocs)
}
