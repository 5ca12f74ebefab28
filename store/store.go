// Package store defines what a session is and the Store contract every
// sessiond backend implements; start with Store, then pick a backend
// (store/memory for development and tests, store/redis for production).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Session is one signed-in device of one user. It never holds the session
// token: the store keys a session by its ID, the SHA-256 of the token (see
// IDFromToken), so every field here is safe to log, list and show.
//
// Stores keep times with millisecond precision.
type Session struct {
	// ID identifies the session; it is IDFromToken(token).
	ID string `json:"id"`
	// UserID is the upstream user's ID; never empty.
	UserID string `json:"userId"`
	// User is the upstream profile (e.g. GET /api/v1/users/me) as raw JSON.
	// It may be empty. A stored session's User is shared, read-only memory:
	// replace it, never modify it in place.
	User json.RawMessage `json:"user,omitempty"`
	// Device describes where the session was created.
	Device Device `json:"device"`

	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`  // last change of User
	LastSeenAt time.Time `json:"lastSeenAt"` // last Touch
	ExpiresAt  time.Time `json:"expiresAt"`  // the session is gone at this instant
}

// Device is what a user sees in "your signed-in devices".
type Device struct {
	UserAgent string `json:"userAgent,omitempty"`
	IP        string `json:"ip,omitempty"`
	Label     string `json:"label,omitempty"` // optional, set by the app ("Work laptop")
}

// LimitPolicy says what Create does when a user already has
// CreateOptions.MaxPerUser live sessions.
type LimitPolicy int

const (
	// EvictOldest deletes the user's sessions that expire soonest (the least
	// recently extended ones) to make room. It is the default.
	EvictOldest LimitPolicy = iota
	// Refuse fails the Create with ErrTooManySessions and changes nothing.
	Refuse
)

// CreateOptions tune one Create.
type CreateOptions struct {
	// MaxPerUser caps the user's live sessions, the new one included.
	// Zero or less means no cap.
	MaxPerUser int
	// OnLimit applies when the cap is reached. Default: EvictOldest.
	OnLimit LimitPolicy
}

// Store keeps sessions. Implementations are safe for concurrent use, never
// return an expired session (whatever their cleanup lag) and validate their
// input before touching storage: a call rejected with ErrInvalid or
// ErrTooLarge changes nothing.
//
// Errors wrap the sentinels below; test them with errors.Is. A cancelled or
// expired ctx yields an error that wraps ctx.Err().
type Store interface {
	// Create saves a new session. s.ID must be a valid ID belonging to
	// s.UserID (see IDFromToken and NewToken), s.UserID non-empty, s.User
	// empty or valid JSON of at most MaxUserSize bytes, and s.ExpiresAt in
	// the future. Zero CreatedAt, UpdatedAt and LastSeenAt are set to now.
	//
	// The session, its place in the user's index and any eviction demanded
	// by opts happen as one atomic step: a concurrent DeleteUser either
	// sees the new session and deletes it, or happens entirely before it.
	// Create returns the IDs it evicted. It returns ErrExists if the ID is
	// taken and ErrTooManySessions when opts refuse the new session.
	Create(ctx context.Context, s *Session, opts CreateOptions) (evicted []string, err error)

	// Get returns the live session with this ID, or ErrNotFound. A
	// malformed ID is ErrNotFound too, found without touching storage.
	Get(ctx context.Context, id string) (*Session, error)

	// Touch sets the session's LastSeenAt and ExpiresAt (sliding expiry)
	// and returns the updated session. It returns ErrNotFound for an
	// unknown or expired ID, and ErrInvalid if expiresAt is not in the future.
	Touch(ctx context.Context, id string, lastSeen, expiresAt time.Time) (*Session, error)

	// UpdateUser replaces User (and sets UpdatedAt) on every live session
	// of userID, atomically, and returns how many it updated. Zero is not
	// an error.
	UpdateUser(ctx context.Context, userID string, user json.RawMessage) (int, error)

	// Delete removes one session. Deleting an unknown ID is a no-op and
	// returns nil.
	Delete(ctx context.Context, id string) error

	// List returns userID's live sessions, oldest first (by CreatedAt).
	// An unknown user has no sessions: an empty list, no error.
	List(ctx context.Context, userID string) ([]*Session, error)

	// DeleteUser removes every session of userID in one atomic step ("sign
	// out everywhere") and returns how many live sessions it removed.
	DeleteUser(ctx context.Context, userID string) (int, error)

	// Count returns how many live sessions userID has.
	Count(ctx context.Context, userID string) (int, error)
}

// Errors returned by every Store. Backends wrap them with context
// ("redis: get session: ..."); compare with errors.Is.
var (
	// ErrNotFound: no live session has this ID.
	ErrNotFound = errors.New("session not found")
	// ErrExists: Create was given an ID that is already stored.
	ErrExists = errors.New("session already exists")
	// ErrInvalid: the input breaks the contract (empty user ID, malformed
	// ID, invalid user JSON, an expiry in the past). Nothing was changed.
	ErrInvalid = errors.New("invalid session input")
	// ErrTooLarge: a field is over its limit (MaxUserSize and friends).
	// Nothing was changed.
	ErrTooLarge = errors.New("session input too large")
	// ErrTooManySessions: Create refused a session over the per-user cap.
	ErrTooManySessions = errors.New("too many sessions for user")
	// ErrUnavailable: the backend could not be reached or answered with a
	// failure; the session may well exist. Callers must not treat it as
	// "signed out".
	ErrUnavailable = errors.New("session store unavailable")
	// ErrFull: the backend refused a write because it has no room (Redis
	// at maxmemory with the noeviction policy). An error wrapping it also
	// wraps ErrUnavailable: reads and deletes still work, and an operator,
	// not a retry, makes room.
	ErrFull = errors.New("session store full")
)
