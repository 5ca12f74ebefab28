package bench

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2/memstore"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/memory"
	"github.com/sessiond/sessiond/store/storetest"
)

// The memory stores at scale: 1M resident sessions of payloadSize bytes,
// 10 per user. Run with -benchtime 1x: each benchmark fills its own store.

const resident = 1_000_000

// residentSession is the i-th session of the large stores; its ID is
// minted from i (no crypto/rand: a million tokens would dominate the
// fill) and its User is its own copy, as from a request body.
func residentSession(i int, expires time.Time) *store.Session {
	userID := fmt.Sprintf("bench-user-%06d", i/10)
	var raw [32]byte
	binary.BigEndian.PutUint64(raw[:], uint64(i))
	binary.BigEndian.PutUint64(raw[8:], uint64(i)*0x9e3779b97f4a7c15)
	return &store.Session{
		ID:     store.UserTag(userID) + base64.RawURLEncoding.EncodeToString(raw[:]),
		UserID: userID, User: userJSON(userID, ourUserLen(userID)),
		Device:    store.Device{UserAgent: strings.Clone(device.UserAgent), IP: strings.Clone(device.IP)},
		ExpiresAt: expires,
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkMemoryGetAtScale compares Get on a store holding 1M sessions
// with Get on one holding 1024, and scs memstore's Find on 1M.
func BenchmarkMemoryGetAtScale(b *testing.B) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for _, n := range []int{keysPerBench, resident} {
		b.Run(fmt.Sprintf("Ours/%d", n), func(b *testing.B) {
			st := memory.New(memory.Options{})
			b.Cleanup(func() { _ = st.Close() })
			keys := make([]string, 0, keysPerBench)
			for i := range n {
				s := residentSession(i, exp)
				_, err := st.Create(ctx, s, store.CreateOptions{})
				require.NoError(b, err)
				if i%(n/keysPerBench) == 0 {
					keys = append(keys, s.ID)
				}
			}
			each(b, func(i int) error { _, err := st.Get(ctx, keys[i%len(keys)]); return err })
		})
	}
	b.Run(fmt.Sprintf("SCSMemstore/%d", resident), func(b *testing.B) {
		st := memstore.NewWithCleanupInterval(time.Hour)
		b.Cleanup(st.StopCleanup)
		keys := make([]string, 0, keysPerBench)
		for i := range resident {
			s := residentSession(i, exp)
			require.NoError(b, st.Commit(s.ID, s.User, exp))
			if i%(resident/keysPerBench) == 0 {
				keys = append(keys, s.ID)
			}
		}
		each(b, func(i int) error { _, _, err := st.Find(keys[i%len(keys)]); return err })
	})
}

// stallReader calls get in a loop until stop is closed and returns the
// longest single call and the number of calls.
func stallReader(get func(i int), stop <-chan struct{}) (worst time.Duration, calls int) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return worst, i
		default:
		}
		t0 := time.Now()
		get(i)
		if d := time.Since(t0); d > worst {
			worst = d
		}
	}
}

// BenchmarkMemoryJanitorStall fills a store with 1M sessions, half of
// them (every session of every other user) due to expire together, and
// measures the longest single Get of a concurrent reader while the
// janitor removes that half, with the garbage collector paused
// ("stall-nogc-ms": the janitor's locking alone) and, for a second wave
// of 200k, as usual ("stall-ms"), beside the same reader's longest Get
// over an equal window with nothing to sweep ("idle-stall-*": the
// machine's own noise). scs memstore gets the same wave, swept by its own
// cleanup.
func BenchmarkMemoryJanitorStall(b *testing.B) {
	ctx := context.Background()
	const window = 1500 * time.Millisecond
	b.Run("Ours", func(b *testing.B) {
		for b.Loop() {
			clk := storetest.NewClock(time.Now())
			st := memory.New(memory.Options{Now: clk.Now, JanitorInterval: 10 * time.Millisecond})
			live := make([]string, 0, resident/2)
			for i := range resident {
				exp := clk.Now().Add(time.Hour)
				if wave(i) {
					exp = clk.Now().Add(time.Minute)
				}
				s := residentSession(i, exp)
				_, err := st.Create(ctx, s, store.CreateOptions{})
				require.NoError(b, err)
				if !wave(i) {
					live = append(live, s.ID)
				}
			}
			get := func(i int) {
				if _, err := st.Get(ctx, live[(i*7919)%len(live)]); err != nil {
					panic(err)
				}
			}
			before := heapAlloc()
			// Twice: with the garbage collector as usual, then paused, so
			// that what is left is the janitor's locking alone (and the
			// machine's scheduling).
			idle := measureStall(get, window, nil, false)
			idleNoGC := measureStall(get, window, nil, true)
			sweepNoGC := measureStall(get, window, func() { clk.Advance(2 * time.Minute) }, true)
			freed := int64(before) - int64(heapAlloc())
			require.Greater(b, freed, int64(resident/2*200), "the janitor did not free the wave within the window")
			// A second wave, with the collector on.
			for i := range resident / 5 {
				s := residentSession(resident+i, clk.Now().Add(time.Minute))
				_, err := st.Create(ctx, s, store.CreateOptions{})
				require.NoError(b, err)
			}
			heapAlloc()
			sweep := measureStall(get, window, func() { clk.Advance(2 * time.Minute) }, false)
			b.ReportMetric(float64(sweep.Microseconds())/1000, "stall-ms")
			b.ReportMetric(float64(idle.Microseconds())/1000, "idle-stall-ms")
			b.ReportMetric(float64(sweepNoGC.Microseconds())/1000, "stall-nogc-ms")
			b.ReportMetric(float64(idleNoGC.Microseconds())/1000, "idle-stall-nogc-ms")
			require.NoError(b, st.Close())
		}
	})
	b.Run("SCSMemstore", func(b *testing.B) {
		for b.Loop() {
			st := memstore.NewWithCleanupInterval(500 * time.Millisecond)
			start := time.Now()
			// Far enough ahead for the fill and one heap measurement.
			due := start.Add(12 * time.Second)
			live := make([]string, 0, resident/2)
			for i := range resident {
				exp := start.Add(time.Hour)
				if wave(i) {
					exp = due
				}
				s := residentSession(i, exp)
				require.NoError(b, st.Commit(s.ID, s.User, exp))
				if !wave(i) {
					live = append(live, s.ID)
				}
			}
			get := func(i int) {
				if _, ok, _ := st.Find(live[(i*7919)%len(live)]); !ok {
					panic("live session not found")
				}
			}
			before := heapAlloc()
			require.Greater(b, time.Until(due), 300*time.Millisecond, "the fill took too long: the wave expired already")
			time.Sleep(time.Until(due) - 200*time.Millisecond)
			// Its cleanup scans every session under the lock, due or
			// not: the window holds at least two runs, one of which
			// removes the wave.
			sweep := measureStall(get, window, nil, true)
			freed := int64(before) - int64(heapAlloc())
			require.Greater(b, freed, int64(resident/2*200), "scs cleanup did not free the wave within the window")
			b.ReportMetric(float64(sweep.Microseconds())/1000, "stall-nogc-ms")
			// And its cleanup with nothing to remove, collector on: it
			// still walks every session under the lock.
			b.ReportMetric(float64(measureStall(get, window, nil, false).Microseconds())/1000, "idle-stall-ms")
			st.StopCleanup()
		}
	})
}

// wave reports whether resident session i belongs to the expiry wave:
// every session of every other user.
func wave(i int) bool { return (i/10)%2 == 0 }

// measureStall runs a reader for window, calling trigger once the reader
// runs, and returns the reader's worst single call. With noGC the
// garbage collector is paused for the window.
func measureStall(get func(int), window time.Duration, trigger func(), noGC bool) time.Duration {
	if noGC {
		runtime.GC()
		defer debug.SetGCPercent(debug.SetGCPercent(-1))
	}
	stop := make(chan struct{})
	var worst atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		w, _ := stallReader(get, stop)
		worst.Store(int64(w))
	})
	time.Sleep(50 * time.Millisecond)
	if trigger != nil {
		trigger()
	}
	time.Sleep(window)
	close(stop)
	wg.Wait()
	return time.Duration(worst.Load())
}

// BenchmarkMemoryHeapPerSession reports the live heap per resident
// session ("B/session") of our store, of a bare map of the sessions as Go
// values (no index, no expiry, no lock) and of scs memstore holding the
// same payload.
func BenchmarkMemoryHeapPerSession(b *testing.B) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	measure := func(b *testing.B, fill func() any) {
		for b.Loop() {
			before := heapAlloc()
			kept := fill()
			b.ReportMetric(float64(int64(heapAlloc())-int64(before))/resident, "B/session")
			runtime.KeepAlive(kept)
		}
	}
	b.Run("Ours", func(b *testing.B) {
		measure(b, func() any {
			st := memory.New(memory.Options{JanitorInterval: -1})
			for i := range resident {
				_, err := st.Create(ctx, residentSession(i, exp), store.CreateOptions{})
				require.NoError(b, err)
			}
			return st
		})
	})
	b.Run("BareMap", func(b *testing.B) {
		measure(b, func() any {
			m := make(map[string]*store.Session)
			for i := range resident {
				s := residentSession(i, exp)
				m[s.ID] = s
			}
			return m
		})
	})
	b.Run("SCSMemstore", func(b *testing.B) {
		measure(b, func() any {
			st := memstore.NewWithCleanupInterval(time.Hour)
			for i := range resident {
				s := residentSession(i, exp)
				// scs stores the encoded blob: payloadSize bytes.
				blob := append(s.User, make([]byte, payloadSize-len(s.User))...)
				require.NoError(b, st.Commit(s.ID, blob, exp))
			}
			return st
		})
	})
}
