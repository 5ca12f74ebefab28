package redis

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
)

func TestMsFormat(t *testing.T) {
	for _, ms := range []int64{0, 1, -1, 1733300000123, -62135596800000, math.MaxInt64, math.MinInt64 + 1} {
		var buf [msWidth]byte
		s := string(fmtMs(&buf, ms))
		require.Len(t, s, msWidth, "fmtMs(%d) = %q", ms, s)
		got, ok := parseMs(s)
		require.True(t, ok, "parseMs(%q)", s)
		require.Equal(t, ms, got, "parseMs(fmtMs(%d))", ms)
	}
	_, ok := parseMs("0000000000000000001x")
	require.False(t, ok)
}

func TestCodecRoundTrip(t *testing.T) {
	now := time.UnixMilli(1733300000123)
	for name, s := range map[string]*store.Session{
		"Full": {
			UserID: "alice:{x}", User: []byte(`{"id":1}`),
			Device:    store.Device{UserAgent: "curl/8", IP: "::1", Label: "Laptop ✓"},
			CreatedAt: now.Add(-time.Hour), UpdatedAt: now.Add(-time.Minute), LastSeenAt: now, ExpiresAt: now.Add(time.Hour),
		},
		"Empty":      {UserID: "u", ExpiresAt: now},
		"BeforeUnix": {UserID: "u", CreatedAt: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), ExpiresAt: now},
	} {
		v := encode(s)
		got, err := decode("id", v)
		require.NoError(t, err, name)
		require.Equal(t, "id", got.ID)
		require.Equal(t, s.UserID, got.UserID, name)
		require.Equal(t, s.Device, got.Device, name)
		require.Equal(t, string(s.User), string(got.User), name)
		for _, p := range [][2]time.Time{{s.CreatedAt, got.CreatedAt}, {s.UpdatedAt, got.UpdatedAt}, {s.LastSeenAt, got.LastSeenAt}, {s.ExpiresAt, got.ExpiresAt}} {
			require.True(t, p[0].Equal(p[1]), "%s: time %v, want %v", name, p[1], p[0])
		}
		require.Zero(t, seqOf(v))
	}
}

func TestDecodeMalformed(t *testing.T) {
	valid := encode(&store.Session{UserID: "u", ExpiresAt: time.UnixMilli(1)})
	for name, v := range map[string]string{
		"Empty":       "",
		"OldVersion":  "0" + valid[1:],
		"Short":       valid[:headerLen],
		"BadDigits":   valid[:5] + "x" + valid[6:],
		"MissingNULs": valid[:headerLen] + "u\x00a\x00b",
		"JSONOnly":    `{"id":"x","userId":"u"}` + strings.Repeat(" ", 100),
	} {
		_, err := decode("id", v)
		require.ErrorIs(t, err, errMalformed, "decode(%s)", name)
	}
}
