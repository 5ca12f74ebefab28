package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/boj/redistore"
	redigo "github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/require"
)

// The peers, each as its documentation sets it up, holding the same
// payload: scs (redisstore over redigo, memstore) and gorilla/sessions
// with boj/redistore (redigo, gob, securecookie-signed session IDs).

// redigoPool is a redigo pool on the run's Redis, sized as our go-redis
// client is.
func redigoPool(b testing.TB, e *redisEnv) *redigo.Pool {
	b.Helper()
	opts := e.srv.Options()
	p := &redigo.Pool{
		MaxIdle:     4 * goroutines,
		IdleTimeout: time.Minute,
		Dial: func() (redigo.Conn, error) {
			return redigo.Dial("tcp", opts.Addr, redigo.DialPassword(opts.Password), redigo.DialDatabase(opts.DB))
		},
	}
	b.Cleanup(func() { _ = p.Close() })
	return p
}

// scsUserLen is the length of the user value that makes scs's stored
// blob (gob of the deadline and the values map) payloadSize bytes.
// Checked by TestPayloadSizes.
const scsUserLen = payloadSize - 140

// scsSessions commits keysPerBench sessions holding a user of the payload
// size and returns their tokens.
func scsSessions(b testing.TB, sm *scs.SessionManager) []string {
	b.Helper()
	tokens := make([]string, keysPerBench)
	for i := range tokens {
		ctx, err := sm.Load(context.Background(), "")
		require.NoError(b, err)
		sm.Put(ctx, "user", string(userJSON(fmt.Sprintf("bench-user-%05d", i/10), scsUserLen)))
		tokens[i], _, err = sm.Commit(ctx)
		require.NoError(b, err)
	}
	return tokens
}

func newSCS(st scs.Store) *scs.SessionManager {
	sm := scs.New()
	sm.Store = st
	sm.Lifetime = time.Hour
	return sm
}

// BenchmarkSCS is alexedwards/scs: its stores' Find, and a request
// through LoadAndSave to a handler reading the user (no write: scs then
// commits nothing).
func BenchmarkSCS(b *testing.B) {
	b.Run("RedisFind", func(b *testing.B) {
		e := newRedisEnv(b)
		st := redisstore.NewWithPrefix(redigoPool(b, e), e.prefix+"scs:")
		tokens := scsSessions(b, newSCS(st))
		each(b, func(i int) error { _, _, err := st.Find(tokens[i%len(tokens)]); return err })
	})
	b.Run("MemFind", func(b *testing.B) {
		st := memstore.New()
		b.Cleanup(st.StopCleanup)
		tokens := scsSessions(b, newSCS(st))
		each(b, func(i int) error { _, _, err := st.Find(tokens[i%len(tokens)]); return err })
	})
	b.Run("LoadAndSaveRedis", func(b *testing.B) {
		e := newRedisEnv(b)
		sm := newSCS(redisstore.NewWithPrefix(redigoPool(b, e), e.prefix+"scs:"))
		benchSCSHandler(b, sm)
	})
	b.Run("LoadAndSaveMemory", func(b *testing.B) {
		st := memstore.New()
		b.Cleanup(st.StopCleanup)
		benchSCSHandler(b, newSCS(st))
	})
}

func benchSCSHandler(b *testing.B, sm *scs.SessionManager) {
	h := sm.LoadAndSave(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := sm.GetString(r.Context(), "user")
		if u == "" {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, u[:16])
	}))
	serve(b, h, cookieRequests(b, sm.Cookie.Name, scsSessions(b, sm)))
}

// gorillaUserLen makes boj/redistore's stored blob (gob of the values
// map) payloadSize bytes. Checked by TestPayloadSizes.
const gorillaUserLen = payloadSize - 48

// BenchmarkGorilla is gorilla/sessions with boj/redistore: a request
// whose handler gets the session (cookie signature checked, one GET, gob
// decoded) and reads the user.
func BenchmarkGorilla(b *testing.B) {
	e := newRedisEnv(b)
	st, cookies := gorillaSessions(b, e)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := st.Get(r, "session")
		u, _ := s.Values["user"].(string)
		if err != nil || u == "" {
			http.Error(w, "no session", http.StatusUnauthorized)
			return
		}
		_, _ = io.WriteString(w, u[:16])
	})
	reqs := make([]*http.Request, len(cookies))
	for i, c := range cookies {
		reqs[i] = httptest.NewRequest("GET", "/", nil)
		reqs[i].AddCookie(c)
	}
	serve(b, h, reqs)
}

func gorillaSessions(b testing.TB, e *redisEnv) (*redistore.RediStore, []*http.Cookie) {
	b.Helper()
	st, err := redistore.NewRediStoreWithPool(redigoPool(b, e), []byte("0123456789abcdef0123456789abcdef"))
	require.NoError(b, err)
	st.SetKeyPrefix(e.prefix + "gorilla:")
	st.SetMaxAge(3600)
	cookies := make([]*http.Cookie, keysPerBench)
	for i := range cookies {
		r := httptest.NewRequest("GET", "/", nil)
		w := httptest.NewRecorder()
		s, err := st.Get(r, "session")
		require.NoError(b, err)
		s.Values["user"] = string(userJSON(fmt.Sprintf("bench-user-%05d", i/10), gorillaUserLen))
		require.NoError(b, s.Save(r, w))
		cs := w.Result().Cookies()
		require.Len(b, cs, 1)
		cookies[i] = cs[0]
	}
	return st, cookies
}
