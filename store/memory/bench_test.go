package memory

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/storetest"
)

// Benchmark data: 400-byte sessions (JSON size as stored, see
// TestBenchSessionSize), 10 per user, IDs minted without crypto/rand so
// that setup stays cheap.

const (
	prefill = 100_000 // sessions in the store while a benchmark runs
	perUser = 10
	chunk   = 10_000 // sessions created and deleted per timed round
)

var benchIDs = base64.RawURLEncoding

func benchSession(userID string, n uint64, now time.Time) *store.Session {
	var raw [32]byte
	binary.BigEndian.PutUint64(raw[:], n)
	binary.BigEndian.PutUint64(raw[8:], n*0x9e3779b97f4a7c15)
	return &store.Session{
		ID:     store.UserTag(userID) + benchIDs.EncodeToString(raw[:]),
		UserID: userID,
		User:   json.RawMessage(`{"id":"` + userID + `","name":"Alex Example","email":"alex@example.com"}`),
		Device: store.Device{
			UserAgent: "Mozilla/5.0 (Macintosh) Safari/605.1.15",
			IP:        "203.0.113.42",
			Label:     "Laptop",
		},
		ExpiresAt: now.Add(30 * 24 * time.Hour),
	}
}

// benchSessions returns n sessions of n/perUser users named prefix-<i>.
func benchSessions(prefix string, n int) []*store.Session {
	now := time.Now()
	out := make([]*store.Session, n)
	for i := range out {
		out[i] = benchSession(fmt.Sprintf("%s-%d", prefix, i/perUser), uint64(i)<<8|uint64(len(prefix)), now)
	}
	return out
}

func TestBenchSessionSize(t *testing.T) {
	stored, err := store.PrepareCreate(benchSessions("user", 1)[0], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(stored)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes: %s", len(b), b)
	if len(b) < 380 || len(b) > 440 {
		t.Fatalf("benchmark session is %d bytes of JSON, want about 400", len(b))
	}
}

func newBenchStore(b *testing.B) (*Store, []*store.Session) {
	b.Helper()
	s := New(Options{})
	b.Cleanup(func() { _ = s.Close() })
	sessions := benchSessions("user", prefill)
	for _, sess := range sessions {
		if _, err := s.Create(context.Background(), sess, store.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	return s, sessions
}

func BenchmarkGet(b *testing.B) {
	s, sessions := newBenchStore(b)
	ctx := context.Background()
	b.Run("Serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.Get(ctx, sessions[i%len(sessions)].ID); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		var worker sync.Mutex
		next := 0
		b.RunParallel(func(pb *testing.PB) {
			worker.Lock()
			i := next * 7919
			next++
			worker.Unlock()
			for pb.Next() {
				if _, err := s.Get(ctx, sessions[i%len(sessions)].ID); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}

// Create and Delete keep the store at its prefilled size: each timed round
// creates (or deletes) one chunk of sessions and an untimed step undoes
// it. b.RunParallel cannot pause the timer, and a store growing by b.N
// sessions would measure the machine's memory rather than the store, so
// the parallel variants spread each chunk over GOMAXPROCS goroutines.

func BenchmarkCreate(b *testing.B) {
	s, _ := newBenchStore(b)
	pool := benchSessions("pool", chunk)
	for _, workers := range []int{1, 0} {
		b.Run(map[int]string{1: "Serial", 0: "Parallel"}[workers], func(b *testing.B) {
			b.ReportAllocs()
			inChunks(b, pool, workers,
				func(sess *store.Session) error {
					_, err := s.Create(context.Background(), sess, store.CreateOptions{})
					return err
				},
				func(sess *store.Session) error { return s.Delete(context.Background(), sess.ID) })
		})
	}
}

func BenchmarkDelete(b *testing.B) {
	s, _ := newBenchStore(b)
	pool := benchSessions("pool", chunk)
	for _, workers := range []int{1, 0} {
		b.Run(map[int]string{1: "Serial", 0: "Parallel"}[workers], func(b *testing.B) {
			b.ReportAllocs()
			// Start from a store that holds the pool, as each round ends.
			for _, sess := range pool {
				if _, err := s.Create(context.Background(), sess, store.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			prepared := prepare(b, pool)
			inChunks(b, pool, workers,
				func(sess *store.Session) error { return s.Delete(context.Background(), sess.ID) },
				func(sess *store.Session) error { s.insert(prepared[sess]); return nil })
			for _, sess := range pool {
				_ = s.Delete(context.Background(), sess.ID)
			}
		})
	}
}

// prepare validates sessions once, so that untimed steps can insert them
// without paying for validation on every round.
func prepare(b *testing.B, sessions []*store.Session) map[*store.Session]*store.Session {
	b.Helper()
	out := make(map[*store.Session]*store.Session, len(sessions))
	for _, sess := range sessions {
		p, err := store.PrepareCreate(sess, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		out[sess] = p
	}
	return out
}

// insert stores p, already prepared, as Create would without a cap.
func (s *Store) insert(p *store.Session) {
	sh := s.shardOfID(p.ID)
	sh.mu.Lock()
	sh.add(newEntry(p), p.UserID)
	sh.mu.Unlock()
}

// inChunks runs timed on b.N sessions of pool in chunks, spread over
// workers goroutines (0: GOMAXPROCS), and after each chunk runs undo on
// it with the timer stopped.
func inChunks(b *testing.B, pool []*store.Session, workers int, timed, undo func(*store.Session) error) {
	b.Helper()
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	b.ResetTimer()
	for done := 0; done < b.N; {
		part := pool[:min(b.N-done, len(pool))]
		var wg sync.WaitGroup
		for w := range workers {
			// Contiguous blocks: neighbours share a user, hence a shard.
			block := part[w*len(part)/workers : (w+1)*len(part)/workers]
			wg.Go(func() {
				for _, sess := range block {
					if err := timed(sess); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		done += len(part)
		b.StopTimer()
		for _, sess := range part {
			if err := undo(sess); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
}

// BenchmarkHeapPerSession reports the live heap per stored 400-byte
// session, for this store and, as the floor, a bare map of the sessions
// as Go values (no index, no expiry, no locks).
func BenchmarkHeapPerSession(b *testing.B) {
	const n = 50_000
	sessions := benchSessions("heap", n)
	measure := func(b *testing.B, fill func() any) {
		for b.Loop() {
			before := heapInUse()
			kept := fill()
			perSession := float64(heapInUse()-before) / n
			runtime.KeepAlive(kept)
			b.ReportMetric(perSession, "B/session")
		}
	}
	b.Run("Store", func(b *testing.B) {
		measure(b, func() any {
			s := New(Options{JanitorInterval: -1})
			for _, sess := range sessions {
				// Create copies the caller's session, as a bare map need not.
				c := *sess
				c.User = append(json.RawMessage(nil), sess.User...)
				if _, err := s.Create(context.Background(), &c, store.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			return s
		})
	})
	b.Run("BareMap", func(b *testing.B) {
		measure(b, func() any {
			m := make(map[string]*store.Session)
			for _, sess := range sessions {
				c := *sess
				c.ID = strings.Clone(sess.ID)
				c.UserID = strings.Clone(sess.UserID)
				c.User = append(json.RawMessage(nil), sess.User...)
				c.Device.UserAgent = strings.Clone(sess.Device.UserAgent)
				c.Device.IP = strings.Clone(sess.Device.IP)
				c.Device.Label = strings.Clone(sess.Device.Label)
				m[c.ID] = &c
			}
			return m
		})
	})
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkSweep reports the janitor's cost per expired session (ns/op),
// with many users and with all sessions under one user: both must stay
// flat, as the janitor pays for what expires, not for what is stored.
func BenchmarkSweep(b *testing.B) {
	for _, users := range []int{chunk / perUser, 1} {
		b.Run(map[int]string{1: "OneUser"}[users]+map[bool]string{true: "ManyUsers"}[users > 1], func(b *testing.B) {
			clk := storetest.NewClock(time.Now())
			s := New(Options{Now: clk.Now, JanitorInterval: -1})
			b.Cleanup(func() { _ = s.Close() })
			// Stored sessions that outlive the benchmark, so a sweep that
			// scanned everything would show.
			for _, sess := range benchSessions("stay", prefill) {
				if _, err := s.Create(context.Background(), sess, store.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			pool := make([]*store.Session, chunk)
			for i := range pool {
				pool[i] = benchSession(fmt.Sprint("gone-", i%users), uint64(i), clk.Now())
			}
			prepared := prepare(b, pool)
			b.ResetTimer()
			for done := 0; done < b.N; {
				b.StopTimer()
				part := pool[:min(b.N-done, len(pool))]
				exp := clk.Now().Add(time.Minute)
				for _, sess := range part {
					p := prepared[sess]
					p.ExpiresAt = exp
					s.insert(p)
				}
				clk.Advance(time.Minute)
				b.StartTimer()
				if n := s.sweep(); n != len(part) {
					b.Fatalf("sweep removed %d sessions, want %d", n, len(part))
				}
				done += len(part)
			}
		})
	}
}
