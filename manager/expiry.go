package manager

import (
	"time"

	"github.com/sessiond/sessiond/store"
)

// The expiry rules, in one place.
//
//	expires = min(lastExtension + MaxAge, CreatedAt + AbsoluteMaxAge)
//
// The store keeps no "last extension" time: it is ExpiresAt - MaxAge, as in
// auth.js. When AbsoluteMaxAge caps the expiry that difference lies before
// the real extension, which only makes an extension look due; the cap then
// keeps the new expiry from moving, so nothing is written.

// expiry is the expiry of a session created at created and extended at now.
func (m *Manager) expiry(created, now time.Time) time.Time {
	exp := now.Add(m.cfg.MaxAge)
	if m.cfg.AbsoluteMaxAge > 0 {
		if limit := created.Add(m.cfg.AbsoluteMaxAge); limit.Before(exp) {
			exp = limit
		}
	}
	// Stores keep milliseconds; comparing at their precision keeps a
	// stored expiry from looking older than the one just computed.
	return exp.Truncate(time.Millisecond)
}

// idle reports whether s has been unused for IdleTimeout at now.
func (m *Manager) idle(s *store.Session, now time.Time) bool {
	return m.cfg.IdleTimeout > 0 && !now.Before(s.LastSeenAt.Add(m.cfg.IdleTimeout))
}

// seenEvery is how stale LastSeenAt may get before a read writes it
// (only with an IdleTimeout): a tenth of the timeout, so a session ends
// between 0.9 and 1.0 IdleTimeout after its last use.
func (m *Manager) seenEvery() time.Duration {
	return min(m.cfg.UpdateAge, m.cfg.IdleTimeout/10)
}

// slide applies the sliding rule to s at now: expires is the expiry to
// store, write whether to call store.Touch at all, extended whether the
// expiry moved (so the cookie must be sent again).
func (m *Manager) slide(s *store.Session, now time.Time) (expires time.Time, write, extended bool) {
	expires = s.ExpiresAt
	due := !now.Before(s.ExpiresAt.Add(-m.cfg.MaxAge).Add(m.cfg.UpdateAge))
	if next := m.expiry(s.CreatedAt, now); due && next.After(s.ExpiresAt) {
		expires, extended = next, true
	}
	seen := m.cfg.IdleTimeout > 0 && now.Sub(s.LastSeenAt) >= m.seenEvery()
	return expires, extended || seen, extended
}
