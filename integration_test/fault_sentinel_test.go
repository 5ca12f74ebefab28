package integration_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// loadEvent is one request of a mixed load.
type loadEvent struct {
	at     time.Time // when it answered
	op     string
	status int // 0: transport error
	code   string
}

// ackedSession is a session whose creation (and maybe sign-out) sessiond
// acknowledged, with when.
type ackedSession struct {
	token     string
	created   time.Time
	revokedAt time.Time // zero: not signed out
}

// mixedLoad runs workers that each loop create → resolve → (every third)
// sign-out → resolve-must-fail, until stop is closed; it records every
// answer and every acknowledged session.
type mixedLoad struct {
	mu       sync.Mutex
	events   []loadEvent
	sessions []*ackedSession
	wg       sync.WaitGroup
	stop     chan struct{}
	bad      atomic.Value // first answer that must never happen (e.g. a 401 for a live session)
}

func startMixedLoad(cs []*client.Client, workers int) *mixedLoad {
	l := &mixedLoad{stop: make(chan struct{})}
	for w := range workers {
		l.wg.Add(1)
		go l.worker(cs[w%len(cs)], w)
	}
	return l
}

func (l *mixedLoad) record(op string, err error) bool {
	r := classifyCall(0, http.StatusOK, err)
	l.mu.Lock()
	l.events = append(l.events, loadEvent{at: time.Now(), op: op, status: r.status, code: r.code})
	l.mu.Unlock()
	return err == nil
}

func (l *mixedLoad) worker(c *client.Client, w int) {
	defer l.wg.Done()
	ctx := context.Background()
	for i := 0; ; i++ {
		select {
		case <-l.stop:
			return
		default:
		}
		cr, err := c.CreateSession(ctx, client.CreateRequest{UserID: fmt.Sprintf("w%d", w)})
		if !l.record("create", err) {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		s := &ackedSession{token: cr.Token, created: time.Now()}
		l.mu.Lock()
		l.sessions = append(l.sessions, s)
		l.mu.Unlock()
		_, err = c.Resolve(ctx, client.ResolveRequest{SessionToken: cr.Token})
		if client.IsCode(err, client.CodeInvalidToken) {
			l.bad.CompareAndSwap(nil, "a just-created session resolved as invalid_token")
		}
		l.record("resolve", err)
		if i%3 != 0 {
			continue
		}
		_, err = c.SignOut(ctx, cr.Token)
		if l.record("signout", err) {
			l.mu.Lock()
			s.revokedAt = time.Now()
			l.mu.Unlock()
		}
	}
}

func (l *mixedLoad) halt() {
	close(l.stop)
	l.wg.Wait()
}

// window returns the first and last failed answer after since, how many
// failed, how many succeeded after the last failure, and the longest time
// without any successful answer (the outage as callers saw it: requests
// held until their deadline count, not only the failed ones).
func (l *mixedLoad) window(since time.Time) (first, last time.Time, failed, okAfter int, gap time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lastOK time.Time
	for _, e := range l.events {
		if e.status == http.StatusOK {
			if !lastOK.IsZero() {
				gap = max(gap, e.at.Sub(lastOK))
			}
			lastOK = e.at
		}
		if e.at.Before(since) {
			continue
		}
		if e.status != http.StatusOK {
			if first.IsZero() {
				first = e.at
			}
			last = e.at
			failed++
			okAfter = 0
		} else {
			okAfter++
		}
	}
	return first, last, failed, okAfter, gap
}

// Fault scenario 2: the Sentinel-monitored master is killed (SIGKILL)
// under a mixed load. sessiond, on a failover client, follows the
// promotion by itself: the error window is measured, every failure in it
// is a 503 (never a 401 that would sign a user out), and afterwards every
// session acknowledged before the kill is readable on the new master and
// no sign-out is undone. This is the harness's small setup (one replica,
// one Sentinel); TestFaultSentinelFailoverThreeSentinels runs the same on
// two replicas and three Sentinels.
func TestFaultSentinelFailover(t *testing.T) {
	sen := redistest.StartSentinel(t)
	failoverUnderLoad(t, "1 replica, 1 sentinel", sen.MasterName, []string{sen.Sentinel.Addr()}, sen.Master.Kill, sen.Master.Addr())
}

// failoverUnderLoad runs a mixed load on two sessiond processes that find
// the master through sentinels, kills the master with kill, waits until
// a Sentinel names another master and the load has succeeded 200 times
// in a row after that, and checks and reports the outcome.
func failoverUnderLoad(t *testing.T, setup, masterName string, sentinels []string, kill func() error, oldMaster string) {
	ps := sessiondtest.StartN(t, 2, sessiondtest.Options{
		APIKey: sessiondtest.APIKey,
		Args: []string{"--store", "redis", "--redis-sentinel-master", masterName,
			"--redis-sentinel-addrs", strings.Join(sentinels, ","), "--request-timeout", "2s",
			// The check below resolves every signed-out token once.
			"--failed-token-rate", "0"},
	})
	cs := []*client.Client{ps[0].Client(), ps[1].Client()}
	load := startMixedLoad(cs, 4)
	t.Cleanup(func() {
		select {
		case <-load.stop:
		default:
			load.halt()
		}
	})
	currentMaster := func() string {
		sc := goredis.NewSentinelClient(&goredis.Options{Addr: sentinels[0]})
		defer sc.Close()
		a, err := sc.GetMasterAddrByName(context.Background(), masterName).Result()
		if err != nil {
			return ""
		}
		return net.JoinHostPort(a[0], a[1])
	}

	time.Sleep(time.Second)
	require.NoError(t, kill())
	killed := time.Now()

	// Wait until a Sentinel names a new master and the load has then
	// succeeded 200 times in a row (writes included), or give up.
	var promoted time.Time
	waitFor(t, 30*time.Second, 50*time.Millisecond, "service resuming after the failover", func() bool {
		if promoted.IsZero() {
			if m := currentMaster(); m != "" && m != oldMaster {
				promoted = time.Now()
			}
			return false
		}
		_, _, _, okAfter, _ := load.window(promoted)
		return okAfter >= 200
	})
	load.halt()
	first, last, failed, _, gap := load.window(killed)
	require.Nil(t, load.bad.Load(), "an answer that signs a user out")

	// Every failure was a "retry later".
	load.mu.Lock()
	codes := map[string]int{}
	for _, e := range load.events {
		if !e.at.Before(killed) && e.status != http.StatusOK {
			codes[fmt.Sprintf("%d %s", e.status, e.code)]++
		}
	}
	total := len(load.events)
	sessions := load.sessions
	load.mu.Unlock()
	for k := range codes {
		require.Equal(t, "503 store_unavailable", k, "failures during the failover: %v", codes)
	}

	// Sessions acknowledged more than a second before the kill, or after
	// the promotion (by the new master), are all there; those of the last
	// second before the kill are counted (asynchronous replication may
	// lose them). Likewise for sign-outs: none acknowledged outside that
	// last second comes undone.
	ctx := context.Background()
	lagged := func(at time.Time) bool { return at.After(killed.Add(-time.Second)) && at.Before(promoted) }
	lostOld, lostNew, lostLate, late, back, backSafe := 0, 0, 0, 0, 0, 0
	for _, s := range sessions {
		_, err := cs[0].Resolve(ctx, client.ResolveRequest{SessionToken: s.token})
		if !s.revokedAt.IsZero() {
			if err == nil {
				back++
				if !lagged(s.revokedAt) {
					backSafe++
				}
			}
			continue
		}
		isLate := s.created.After(killed.Add(-time.Second)) && s.created.Before(killed)
		if isLate {
			late++
		}
		if err != nil {
			require.True(t, client.IsCode(err, client.CodeInvalidToken), "resolve after the failover: %v", err)
			switch {
			case isLate:
				lostLate++
			case s.created.Before(killed):
				lostOld++
			case s.created.After(promoted):
				lostNew++
			}
		}
	}
	window := "none"
	if failed > 0 {
		window = fmt.Sprintf("%v to %v after the kill", first.Sub(killed).Round(time.Millisecond), last.Sub(killed).Round(time.Millisecond))
	}
	t.Logf("REPORT sentinel (%s): master killed; promotion seen %v after the kill; no successful answer for %v; failed requests %d, all 503 (%s); %d requests in all; sessions lost: %d acknowledged >1 s before the kill, %d after the promotion, %d of %d in the last second; sign-outs undone: %d (%d outside the last second)",
		setup, promoted.Sub(killed).Round(time.Millisecond), gap.Round(time.Millisecond), failed, window,
		total, lostOld, lostNew, lostLate, late, back, backSafe)
	require.Zero(t, lostOld, "sessions acknowledged more than 1 s before the kill were lost")
	require.Zero(t, lostNew, "sessions acknowledged by the new master were lost")
	require.Zero(t, backSafe, "sign-outs acknowledged more than 1 s before the kill, or by the new master, were undone")
	require.Less(t, gap, 20*time.Second, "error window")
}
