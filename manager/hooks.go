package manager

import (
	"context"
	"time"

	"github.com/sessiond/sessiond/store"
)

// Hooks are called after session events, for audit logs, metrics and
// notifications ("a new device signed in"). Every field may be nil. Hooks
// run synchronously on the goroutine of the call that caused the event, so
// they must be quick and must not call back into the Manager for the same
// session; hand slow work to a queue of your own.
//
// An Event never carries a token, only session IDs, so hooks may log it
// whole.
type Hooks struct {
	// SignIn: SignIn created a session for a user.
	SignIn func(ctx context.Context, e Event)
	// SignOut: SignOut or RevokeToken ended the caller's own session.
	SignOut func(ctx context.Context, e Event)
	// SessionCreated: any new session (SignIn, CreateSession, or the JWT
	// and refresh steps of the resolve chain; see Event.Source).
	SessionCreated func(ctx context.Context, e Event)
	// SessionRevoked: a session ended other than by its own sign-out:
	// RevokeSession, eviction by MaxSessionsPerUser, the idle timeout, or
	// replacement by SignIn (session fixation defence).
	SessionRevoked func(ctx context.Context, e Event)
	// Refreshed: the refresh step got new tokens from the upstream.
	Refreshed func(ctx context.Context, e Event)
	// Invalidated: InvalidateUserSessions ended Event.Count sessions.
	Invalidated func(ctx context.Context, e Event)
}

// Event describes one session event.
type Event struct {
	Time      time.Time
	UserID    string
	SessionID string // empty for Invalidated
	// Source says which step created the session (SessionCreated) or which
	// credentials were refreshed (Refreshed).
	Source Source
	Device store.Device
	// Reason says why a session was revoked: "revoked", "evicted",
	// "idle", "replaced".
	Reason string
	// Count is how many sessions Invalidated ended.
	Count int
}

func (m *Manager) emit(ctx context.Context, h func(context.Context, Event), e Event) {
	if h == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = m.now()
	}
	h(ctx, e)
}
