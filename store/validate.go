package store

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
	"unicode/utf8"
)

// Limits every backend enforces, so that one caller cannot fill the store
// with a single session.
const (
	MaxUserIDLen    = 256      // bytes of Session.UserID
	MaxUserSize     = 64 << 10 // bytes of Session.User
	MaxUserAgentLen = 512      // bytes of Device.UserAgent
	MaxLabelLen     = 128      // bytes of Device.Label
)

// PrepareCreate checks s against the Create contract and returns the copy a
// backend should store: times truncated to milliseconds, zero CreatedAt,
// UpdatedAt and LastSeenAt set to now, User copied so the caller may reuse
// its buffer. Backends call it before touching storage.
func PrepareCreate(s *Session, now time.Time) (*Session, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: nil session", ErrInvalid)
	}
	if err := validUserID(s.UserID); err != nil {
		return nil, err
	}
	if !ValidID(s.ID) {
		return nil, fmt.Errorf("%w: malformed session ID", ErrInvalid)
	}
	if s.ID[:TagLen] != UserTag(s.UserID) {
		return nil, fmt.Errorf("%w: session ID does not belong to this user (mint tokens with NewToken(userID))", ErrInvalid)
	}
	if err := ValidateUser(s.User); err != nil {
		return nil, err
	}
	if err := validDevice(s.Device); err != nil {
		return nil, err
	}
	now = now.Truncate(time.Millisecond)
	c := *s
	c.User = append(json.RawMessage(nil), s.User...)
	for _, t := range []*time.Time{&c.CreatedAt, &c.UpdatedAt, &c.LastSeenAt} {
		if t.IsZero() {
			*t = now
		}
		*t = t.Truncate(time.Millisecond)
	}
	c.ExpiresAt = c.ExpiresAt.Truncate(time.Millisecond)
	if !c.ExpiresAt.After(now) {
		return nil, fmt.Errorf("%w: session expiry must be in the future", ErrInvalid)
	}
	return &c, nil
}

// ValidateUser checks a user profile for Create and UpdateUser: empty, or
// valid JSON of at most MaxUserSize bytes.
func ValidateUser(user json.RawMessage) error {
	if len(user) > MaxUserSize {
		return fmt.Errorf("%w: user profile is %d bytes, limit %d", ErrTooLarge, len(user), MaxUserSize)
	}
	if len(user) > 0 && !json.Valid(user) {
		return fmt.Errorf("%w: user profile is not valid JSON", ErrInvalid)
	}
	return nil
}

// ValidateUserID checks a user ID: non-empty, valid UTF-8, at most
// MaxUserIDLen bytes, no control characters.
func ValidateUserID(userID string) error { return validUserID(userID) }

func validUserID(userID string) error {
	switch {
	case userID == "":
		return fmt.Errorf("%w: empty user ID", ErrInvalid)
	case len(userID) > MaxUserIDLen:
		return fmt.Errorf("%w: user ID is %d bytes, limit %d", ErrTooLarge, len(userID), MaxUserIDLen)
	case !utf8.ValidString(userID) || hasControl(userID):
		return fmt.Errorf("%w: user ID must be printable UTF-8", ErrInvalid)
	}
	return nil
}

// ValidateTouch checks the arguments of Touch.
func ValidateTouch(lastSeen, expiresAt, now time.Time) error {
	if lastSeen.IsZero() {
		return fmt.Errorf("%w: zero last-seen time", ErrInvalid)
	}
	if !expiresAt.Truncate(time.Millisecond).After(now) {
		return fmt.Errorf("%w: session expiry must be in the future", ErrInvalid)
	}
	return nil
}

func validDevice(d Device) error {
	switch {
	case len(d.UserAgent) > MaxUserAgentLen:
		return fmt.Errorf("%w: user agent is %d bytes, limit %d", ErrTooLarge, len(d.UserAgent), MaxUserAgentLen)
	case len(d.Label) > MaxLabelLen:
		return fmt.Errorf("%w: device label is %d bytes, limit %d", ErrTooLarge, len(d.Label), MaxLabelLen)
	case !utf8.ValidString(d.UserAgent) || !utf8.ValidString(d.Label) || hasControl(d.UserAgent) || hasControl(d.Label):
		return fmt.Errorf("%w: device text must be printable UTF-8", ErrInvalid)
	}
	if d.IP != "" {
		if _, err := netip.ParseAddr(d.IP); err != nil {
			return fmt.Errorf("%w: device IP is not an IP address", ErrInvalid)
		}
	}
	return nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// Live reports whether s has not expired at now.
func (s *Session) Live(now time.Time) bool { return now.Before(s.ExpiresAt) }

// Clone returns a copy of s that shares User, which is read-only by contract.
func (s *Session) Clone() *Session {
	c := *s
	return &c
}
