package manager

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A flood of distinct access tokens must neither grow the map past its
// bound nor forget live entries one by one on every new token.
func TestAccessSessionsBounded(t *testing.T) {
	a := &accessSessions{m: make(map[[32]byte]accessSession)}
	now := time.Unix(1_700_000_000, 0)
	for i := 0; i < maxAccessSessions+10; i++ {
		a.put("token-"+strconv.Itoa(i), "id", now.Add(time.Hour), now)
		require.LessOrEqual(t, len(a.m), maxAccessSessions)
	}
	// The overflow shed a batch, leaving room for many more puts without
	// another scan.
	require.Less(t, len(a.m), maxAccessSessions-maxAccessSessions/32)

	id, ok := a.get("token-"+strconv.Itoa(maxAccessSessions+9), now)
	require.True(t, ok, "the newest entry must survive the shedding")
	require.Equal(t, "id", id)

	// Expired entries are dropped first: fill with expired ones, then one
	// more put keeps every live entry.
	b := &accessSessions{m: make(map[[32]byte]accessSession)}
	for i := 0; i < maxAccessSessions-1; i++ {
		b.put("old-"+strconv.Itoa(i), "old", now.Add(time.Second), now)
	}
	b.put("live", "live", now.Add(time.Hour), now)
	later := now.Add(time.Minute)
	b.put("new", "new", later.Add(time.Hour), later)
	require.Len(t, b.m, 2, "expired entries are swept before any live one is shed")
	_, ok = b.get("old-1", later)
	require.False(t, ok)
}
