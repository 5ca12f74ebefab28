// Package storetest is the conformance suite of the store.Store contract.
// Every backend's tests call Run, as file systems call fstest.TestFS:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, now func() time.Time) store.Store {
//			s := memory.New(memory.Options{Now: now})
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
)

// NewStore returns a new, empty store whose notion of "now" is the given
// func. The suite calls it once per subtest. Backends that keep time
// elsewhere too (Redis key TTLs) still must use now() for every expiry
// decision they make.
type NewStore func(t *testing.T, now func() time.Time) store.Store

// Run runs the whole contract against stores made by newStore. Subtests do
// not run in parallel, so a backend may share one server between them.
//
// Each store gets a fake Clock that starts at the real time of the call
// (so that expiries handed to a server as TTLs or absolute times are in
// the future there too) and then moves only when the suite moves it. The
// one exception, Expiry/RealTTL, passes time.Now and waits out a 300 ms
// TTL. A few closely related checks (the Context group) share one store.
func Run(t *testing.T, newStore NewStore) {
	t.Helper()
	t.Run("Create", func(t *testing.T) { testCreate(t, newStore) })
	t.Run("Get", func(t *testing.T) { testGet(t, newStore) })
	t.Run("Expiry", func(t *testing.T) { testExpiry(t, newStore) })
	t.Run("Touch", func(t *testing.T) { testTouch(t, newStore) })
	t.Run("List", func(t *testing.T) { testList(t, newStore) })
	t.Run("UpdateUser", func(t *testing.T) { testUpdateUser(t, newStore) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore) })
	t.Run("DeleteUser", func(t *testing.T) { testDeleteUser(t, newStore) })
	t.Run("Limit", func(t *testing.T) { testLimit(t, newStore) })
	t.Run("Race", func(t *testing.T) { testRace(t, newStore) })
	t.Run("Context", func(t *testing.T) { testContext(t, newStore) })
}

// env is one subtest's store and clock.
type env struct {
	s   store.Store
	clk *Clock
	ctx context.Context
}

// setup makes a fresh store on a fake clock that starts at the real time,
// so that backends which also hand expiries to a server (absolute or
// relative) agree with it.
func setup(t *testing.T, newStore NewStore) *env {
	t.Helper()
	clk := NewClock(time.Now())
	s := newStore(t, clk.Now)
	require.NotNil(t, s, "NewStore returned a nil store")
	return &env{s: s, clk: clk, ctx: context.Background()}
}

// newID mints the ID of a fresh session of userID.
func newID(t *testing.T, userID string) string {
	t.Helper()
	token, err := store.NewToken(userID)
	require.NoError(t, err)
	id, err := store.IDFromToken(token)
	require.NoError(t, err)
	return id
}

// withTag returns id with its user tag replaced, for user IDs NewToken
// refuses.
func withTag(id, tag string) string { return tag + id[store.TagLen:] }

// session returns a new, fully populated session of userID that expires
// ttl from now. Its times other than ExpiresAt are zero (set by Create).
func (e *env) session(t *testing.T, userID string, ttl time.Duration) *store.Session {
	t.Helper()
	user, err := json.Marshal(map[string]any{"id": userID, "name": "Name of " + userID, "roles": []string{"reader"}})
	require.NoError(t, err)
	return &store.Session{
		ID:     newID(t, userID),
		UserID: userID,
		User:   user,
		Device: store.Device{
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
			IP:        "203.0.113.7",
			Label:     "Work laptop",
		},
		ExpiresAt: e.clk.Now().Add(ttl),
	}
}

// create stores s and returns the session as the store must now hold it.
func (e *env) create(t *testing.T, s *store.Session, opts store.CreateOptions) *store.Session {
	t.Helper()
	want, err := store.PrepareCreate(s, e.clk.Now())
	require.NoError(t, err, "test bug: the session is not valid")
	evicted, err := e.s.Create(e.ctx, s, opts)
	require.NoError(t, err, "Create(%s)", s.ID)
	require.Empty(t, evicted, "Create(%s) evicted sessions", s.ID)
	return want
}

// add creates a new session of userID expiring ttl from now.
func (e *env) add(t *testing.T, userID string, ttl time.Duration) *store.Session {
	t.Helper()
	return e.create(t, e.session(t, userID, ttl), store.CreateOptions{})
}

func (e *env) get(t *testing.T, id string) *store.Session {
	t.Helper()
	got, err := e.s.Get(e.ctx, id)
	require.NoError(t, err, "Get(%s)", id)
	require.NotNil(t, got, "Get(%s) returned a nil session", id)
	return got
}

func (e *env) requireNotFound(t *testing.T, id string) {
	t.Helper()
	got, err := e.s.Get(e.ctx, id)
	require.ErrorIs(t, err, store.ErrNotFound, "Get(%q) = %v", id, got)
}

// requireUser checks that userID's live sessions are exactly want, oldest
// first, and that Count, List and Get agree with each other.
func (e *env) requireUser(t *testing.T, userID string, want ...*store.Session) {
	t.Helper()
	n, err := e.s.Count(e.ctx, userID)
	require.NoError(t, err, "Count(%q)", userID)
	require.Equal(t, len(want), n, "Count(%q)", userID)
	list, err := e.s.List(e.ctx, userID)
	require.NoError(t, err, "List(%q)", userID)
	require.Len(t, list, len(want), "List(%q) = %v", userID, ids(list))
	for i := range want {
		requireSession(t, want[i], list[i], "List(%q)[%d]", userID, i)
		requireSession(t, want[i], e.get(t, want[i].ID), "Get(%s)", want[i].ID)
	}
}

func ids(ss []*store.Session) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

// requireSession checks got against want field by field: times with
// Equal (backends may decode them in another location), User as JSON
// (backends may re-encode it).
func requireSession(t *testing.T, want, got *store.Session, msgAndArgs ...any) {
	t.Helper()
	where := ""
	if len(msgAndArgs) > 0 {
		where = fmt.Sprintf(msgAndArgs[0].(string), msgAndArgs[1:]...) + ": "
	}
	require.NotNil(t, got, "%sgot a nil session", where)
	require.Equal(t, want.ID, got.ID, "%sID", where)
	require.Equal(t, want.UserID, got.UserID, "%sUserID", where)
	require.Equal(t, want.Device, got.Device, "%sDevice", where)
	if len(want.User) == 0 {
		require.Empty(t, got.User, "%sUser", where)
	} else {
		require.JSONEq(t, string(want.User), string(got.User), "%sUser", where)
	}
	for _, f := range []struct {
		name      string
		want, got time.Time
	}{
		{"CreatedAt", want.CreatedAt, got.CreatedAt},
		{"UpdatedAt", want.UpdatedAt, got.UpdatedAt},
		{"LastSeenAt", want.LastSeenAt, got.LastSeenAt},
		{"ExpiresAt", want.ExpiresAt, got.ExpiresAt},
	} {
		require.True(t, f.want.Equal(f.got), "%s%s = %v, want %v", where, f.name, f.got, f.want)
	}
}

// ms truncates to the precision stores keep.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond) }

// jsonOfSize returns a valid JSON document of exactly n bytes (n >= 8).
func jsonOfSize(n int) json.RawMessage {
	return json.RawMessage(`{"p":"` + strings.Repeat("x", n-8) + `"}`)
}

// malformedIDs returns IDs that ValidID rejects, derived from a valid one.
func malformedIDs(t *testing.T) map[string]string {
	t.Helper()
	valid := newID(t, "alice")
	require.True(t, store.ValidID(valid))
	m := map[string]string{
		"Empty":          "",
		"Short":          valid[:store.IDLen-1],
		"Long":           valid + "A",
		"UpperCaseTag":   "ABCD" + valid[store.TagLen:],
		"NonHexTag":      "zzzz" + valid[store.TagLen:],
		"BadAlphabet":    valid[:10] + "+" + valid[11:],
		"PathLike":       "../" + valid[3:],
		"SpareBitsSet":   valid[:store.IDLen-1] + "B", // 43 base64 characters leave 2 bits that must be zero
		"Huge":           strings.Repeat("a", 1<<20),
		"RedisPattern":   valid[:store.IDLen-1] + "*",
		"NullByte":       valid[:20] + "\x00" + valid[21:],
		"SpaceSeparated": valid[:20] + " " + valid[21:],
	}
	for name, id := range m {
		if store.ValidID(id) {
			t.Fatalf("test bug: malformed ID %s is valid", name)
		}
	}
	return m
}
