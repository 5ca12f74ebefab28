package manager

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/sessiond/sessiond/store"
)

// Hooks are called after session events, for audit logs, metrics and
// notifications ("a new device signed in"). Every field may be nil. Hooks
// run synchronously on the goroutine of the call that caused the event
// (for the JWT and refresh steps of Resolve, the goroutine of the merged
// step that concurrent callers share), so they must be quick and must not
// call back into the Manager for the same session; hand slow work to a
// queue of your own.
//
// A hook runs after its event has happened (the session is stored,
// deleted or refreshed), so a hook that panics cannot undo it: the panic
// is recovered, logged at Error on Config.Logger with the hook's name, the
// event's user and session IDs and the stack, and the operation goes on
// and reports its success. A panicking audit hook thus loses its record
// but never fails a sign-in or takes the process down. That holds for
// http.ErrAbortHandler too: a hook has no response of its own to abort,
// and re-raised inside a merged step it would end the process. Report
// failures that must not pass unnoticed from the hook itself.
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

// hook names one field of Hooks.
type hook int

const (
	hookSignIn hook = iota
	hookSignOut
	hookSessionCreated
	hookSessionRevoked
	hookRefreshed
	hookInvalidated
)

func (k hook) String() string {
	return [...]string{"SignIn", "SignOut", "SessionCreated", "SessionRevoked", "Refreshed", "Invalidated"}[k]
}

func (h *Hooks) get(k hook) func(context.Context, Event) {
	switch k {
	case hookSignIn:
		return h.SignIn
	case hookSignOut:
		return h.SignOut
	case hookSessionCreated:
		return h.SessionCreated
	case hookSessionRevoked:
		return h.SessionRevoked
	case hookRefreshed:
		return h.Refreshed
	case hookInvalidated:
		return h.Invalidated
	}
	return nil
}

// emit calls the hook k with e, if it is set, and survives its panic
// (see Hooks).
func (m *Manager) emit(ctx context.Context, k hook, e Event) {
	h := m.cfg.Hooks.get(k)
	if h == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = m.now()
	}
	defer func() {
		if v := recover(); v != nil {
			// An Event holds no token; the panic value is the hook's
			// own, made from what it was given.
			m.log.ErrorContext(ctx, "manager: hook panicked; the operation went on",
				"hook", k.String(), "user_id", e.UserID, "session_id", e.SessionID,
				"source", e.Source.String(), "reason", e.Reason,
				"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		}
	}()
	h(ctx, e)
}
