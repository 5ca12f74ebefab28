package main

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxTrackedCallers bounds the limiter's memory: callers identified by IP
// are unbounded in number, API keys are not.
const maxTrackedCallers = 10000

// failureLimiter limits failed token checks per caller. Valid tokens cost
// nothing; each failed check takes one token from the caller's bucket, and
// a caller whose bucket is empty is refused every token-bearing request
// (valid or not) until it refills, so it cannot keep probing. Session
// tokens carry 256 random bits, so this is not what keeps them safe; it
// caps the load a buggy or hostile caller can put on the store and the
// upstream through failing lookups and refreshes.
type failureLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu      sync.Mutex
	callers map[string]*rate.Limiter
}

// newFailureLimiter returns a limiter, or nil (no limit) when perSecond is 0.
func newFailureLimiter(perSecond float64, burst int, now func() time.Time) *failureLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &failureLimiter{limit: rate.Limit(perSecond), burst: burst, now: now, callers: map[string]*rate.Limiter{}}
}

// blocked reports whether caller has used up its failures, and how long
// until it may try again.
func (l *failureLimiter) blocked(caller string) (bool, time.Duration) {
	if l == nil {
		return false, 0
	}
	l.mu.Lock()
	lim := l.callers[caller]
	l.mu.Unlock()
	if lim == nil {
		return false, 0
	}
	tokens := lim.TokensAt(l.now())
	if tokens >= 1 {
		return false, 0
	}
	wait := time.Duration(math.Ceil((1 - tokens) / float64(l.limit) * float64(time.Second)))
	return true, wait
}

// fail records one failed token check of caller.
func (l *failureLimiter) fail(caller string) {
	if l == nil {
		return
	}
	now := l.now()
	l.mu.Lock()
	lim := l.callers[caller]
	if lim == nil {
		if len(l.callers) >= maxTrackedCallers {
			l.prune(now)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.callers[caller] = lim
	}
	l.mu.Unlock()
	lim.AllowN(now, 1)
}

// prune forgets callers whose bucket is full again (forgetting them changes
// nothing) and, if that is not enough, arbitrary others down to 90% of the
// cap, so that the scan runs once per many new callers rather than once per
// caller: under a flood of distinct IPs a forgotten caller merely gets a
// fresh burst. Called with mu held.
func (l *failureLimiter) prune(now time.Time) {
	for k, lim := range l.callers {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.callers, k)
		}
	}
	for k := range l.callers {
		if len(l.callers) < maxTrackedCallers*9/10 {
			break
		}
		delete(l.callers, k)
	}
}
