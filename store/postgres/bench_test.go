package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
)

// Run with, for example:
//
//	go test -run '^$' -bench . -benchmem ./store/postgres/
//
// BenchmarkRawGet is the floor: the same primary-key SELECT on the same
// pool without the store, so the store's own cost is the difference.

const benchUsers = 1000

// user400 is a 400-byte profile, the size the README's figures assume.
var user400 = func() json.RawMessage {
	u := `{"id":"u","name":"A. Person","email":"a.person@example.com","roles":["reader"],"bio":"`
	u += strings.Repeat("x", 400-len(u)-2) + `"}`
	return json.RawMessage(u)
}()

func benchSession(b *testing.B, userID string, now time.Time) *store.Session {
	token, err := store.NewToken(userID)
	require.NoError(b, err)
	id, err := store.IDFromToken(token)
	require.NoError(b, err)
	return &store.Session{
		ID: id, UserID: userID, User: user400,
		Device: store.Device{
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
			IP:        "203.0.113.7",
		},
		ExpiresAt: now.Add(30 * 24 * time.Hour),
	}
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	s := newStore(b, Options{})
	sess := benchSession(b, "alice", time.Now())
	_, err := s.Create(ctx, sess, store.CreateOptions{})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(ctx, sess.ID); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetParallel(b *testing.B) {
	ctx := context.Background()
	s := newStore(b, Options{})
	sess := benchSession(b, "alice", time.Now())
	_, err := s.Create(ctx, sess, store.CreateOptions{})
	require.NoError(b, err)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Get(ctx, sess.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRawGet reads the same row with the same SELECT straight from
// the pool: what any PostgreSQL session lookup costs at least.
func BenchmarkRawGet(b *testing.B) {
	ctx := context.Background()
	s := newStore(b, Options{})
	sess := benchSession(b, "alice", time.Now())
	_, err := s.Create(ctx, sess, store.CreateOptions{})
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		var (
			id, userID, ua, ip, label string
			user                      []byte
			c, u, l, e                time.Time
		)
		err := s.pool.QueryRow(ctx, s.sql.get, sess.ID, time.Now()).Scan(&id, &userID, &user, &ua, &ip, &label, &c, &u, &l, &e)
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreate creates sessions spread over benchUsers users, with and
// without the per-user cap (which adds a read of the user's sessions).
func BenchmarkCreate(b *testing.B) {
	for _, opts := range []store.CreateOptions{{}, {MaxPerUser: 5}} {
		b.Run(fmt.Sprintf("MaxPerUser=%d", opts.MaxPerUser), func(b *testing.B) {
			ctx := context.Background()
			s := newStore(b, Options{})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				sess := benchSession(b, fmt.Sprintf("user-%d", i%benchUsers), time.Now())
				i++
				if _, err := s.Create(ctx, sess, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCreateParallel(b *testing.B) {
	ctx := context.Background()
	s := newStore(b, Options{})
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sess := benchSession(b, fmt.Sprintf("user-%d", n.Add(1)%benchUsers), time.Now())
			if _, err := s.Create(ctx, sess, store.CreateOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkBytesPerSession stores 10,000 sessions with a 400-byte user
// and reports the table's size on disk, indexes and TOAST included, per
// session. It does the same work whatever b.N, so it runs once.
func BenchmarkBytesPerSession(b *testing.B) {
	const sessions, workers = 10_000, 4
	ctx := context.Background()
	s := newStore(b, Options{})
	for b.Loop() {
		_, err := s.pool.Exec(ctx, "TRUNCATE "+s.table)
		require.NoError(b, err)
		var (
			next atomic.Int64
			wg   sync.WaitGroup
			errs = make([]error, workers)
		)
		for w := range workers {
			wg.Go(func() {
				for i := next.Add(1); i <= sessions && errs[w] == nil; i = next.Add(1) {
					sess := benchSession(b, fmt.Sprintf("user-%d", i%benchUsers), time.Now())
					_, errs[w] = s.Create(ctx, sess, store.CreateOptions{})
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(b, err)
		}
	}
	var total, heap int64
	require.NoError(b, s.pool.QueryRow(ctx,
		"SELECT pg_total_relation_size($1::regclass), pg_relation_size($1::regclass)", s.table).Scan(&total, &heap))
	b.ReportMetric(float64(total)/sessions, "bytes/session")
	b.ReportMetric(float64(heap)/sessions, "heap-bytes/session")
}
