// Package memory is the in-process store.Store: for development, tests and
// single-instance deployments. Start with New. Sessions live in the Go heap
// and vanish with the process; several sessiond instances need store/redis.
package memory

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond/store"
)

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// Now is the store's clock; tests pass a fake one. Default: time.Now.
	Now func() time.Time
	// JanitorInterval is how often a background goroutine removes expired
	// sessions from memory. Expired sessions are never returned whatever
	// the janitor's lag; the janitor only gives their memory back. Each
	// run costs in proportion to what has expired, not to what is stored.
	// Default: 1 minute. Negative: no janitor; expired sessions then stay
	// in memory (never returned) until Delete, DeleteUser, UpdateUser or a
	// capped Create for their user removes them.
	JanitorInterval time.Duration
}

const (
	// shardCount shards by the first byte of the user tag, so one user's
	// sessions and index share a shard and one lock: DeleteUser and the
	// per-user cap are atomic against Create without a global lock.
	shardCount = 256
	// sweepBatch bounds how many expired sessions the janitor removes per
	// lock hold, so that a reader never waits long behind it.
	sweepBatch = 128
)

// Store is an in-memory store.Store, safe for concurrent use. Close stops
// its janitor.
type Store struct {
	now    func() time.Time
	shards [shardCount]shard

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// New returns an empty Store and starts its janitor (see Options).
func New(opts Options) *Store {
	s := &Store{now: opts.Now, stop: make(chan struct{}), done: make(chan struct{})}
	if s.now == nil {
		s.now = time.Now
	}
	for i := range s.shards {
		s.shards[i].sessions = make(map[string]*entry)
		s.shards[i].users = make(map[string]*userIndex)
	}
	interval := opts.JanitorInterval
	if interval == 0 {
		interval = time.Minute
	}
	if interval < 0 {
		close(s.done)
		return s
	}
	go s.janitor(interval)
	return s
}

// Close stops the janitor and waits for it to return. The store stays
// usable; only the background cleanup ends. Close is idempotent and always
// returns nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.done
	return nil
}

func (s *Store) janitor(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.sweep()
		}
	}
}

// sweep removes every session that has expired by now and returns how
// many it removed.
func (s *Store) sweep() int {
	now := s.now().UnixMilli()
	n := 0
	for i := range s.shards {
		n += s.shards[i].sweep(now)
	}
	return n
}

// entry is one stored session, laid out compactly: times as Unix
// milliseconds (stores keep millisecond precision), the device texts in
// one string, the user ID shared with the user's index.
type entry struct {
	id      string
	owner   *userIndex
	user    json.RawMessage
	device  string // UserAgent + IP + Label
	uaLen   uint16
	ipLen   uint16
	heapIdx int32
	created int64
	updated int64
	seen    int64
	expires int64
}

// userIndex is one user's sessions in one shard, ordered by CreatedAt
// (ties: creation order), so List needs no sort. Removal only marks an
// entry dead (heapIdx -1) and the slice is compacted once half of it is
// dead, so that removing any one session costs O(1) amortized even for a
// user with a great many sessions.
type userIndex struct {
	id      string
	entries []*entry // live and dead
	dead    int
}

// stored reports whether e is still in its shard (not yet removed).
func (e *entry) stored() bool { return e.heapIdx >= 0 }

func (u *userIndex) compact() {
	kept := u.entries[:0]
	for _, e := range u.entries {
		if e.stored() {
			kept = append(kept, e)
		}
	}
	clear(u.entries[len(kept):])
	u.entries, u.dead = kept, 0
	if cap(u.entries) > 16 && cap(u.entries) > 4*len(u.entries) {
		// Give back the memory of a user who once had many sessions.
		u.entries = slices.Clip(slices.Clone(u.entries))
	}
}

func newEntry(s *store.Session) *entry {
	d := s.Device
	return &entry{
		id:      strings.Clone(s.ID), // see add
		user:    s.User,
		device:  d.UserAgent + d.IP + d.Label,
		uaLen:   uint16(len(d.UserAgent)),
		ipLen:   uint16(len(d.IP)),
		created: s.CreatedAt.UnixMilli(),
		updated: s.UpdatedAt.UnixMilli(),
		seen:    s.LastSeenAt.UnixMilli(),
		expires: s.ExpiresAt.UnixMilli(),
	}
}

func (e *entry) live(now int64) bool { return now < e.expires }

// session returns a new Session holding e's data. It allocates only the
// Session: strings and User are shared (User is read-only by contract).
func (e *entry) session() *store.Session {
	ip := int(e.uaLen) + int(e.ipLen)
	return &store.Session{
		ID:     e.id,
		UserID: e.owner.id,
		User:   e.user,
		Device: store.Device{
			UserAgent: e.device[:e.uaLen],
			IP:        e.device[e.uaLen:ip],
			Label:     e.device[ip:],
		},
		CreatedAt:  fromMillis(e.created),
		UpdatedAt:  fromMillis(e.updated),
		LastSeenAt: fromMillis(e.seen),
		ExpiresAt:  fromMillis(e.expires),
	}
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// representable reports whether t survives the round trip through Unix
// milliseconds (it does for every year the calendar needs).
func representable(ts ...time.Time) bool {
	for _, t := range ts {
		if !time.UnixMilli(t.UnixMilli()).Equal(t.Truncate(time.Millisecond)) {
			return false
		}
	}
	return true
}

// shard holds the sessions whose user tag starts with one byte value.
type shard struct {
	mu       sync.RWMutex
	sessions map[string]*entry
	users    map[string]*userIndex
	expiry   []*entry // min-heap by expires; entry.heapIdx is the position
	_        [64]byte // keep neighbouring shards' locks off one cache line
}

// shardOfID picks the shard from the first byte of the ID's hex user tag.
// id must be valid (store.ValidID).
func (s *Store) shardOfID(id string) *shard {
	return &s.shards[unhex(id[0])<<4|unhex(id[1])]
}

// shardOfUser picks the shard of userID: the first byte of SHA-256(userID),
// which is what the first two hex characters of the user tag encode.
func (s *Store) shardOfUser(userID string) *shard {
	sum := sha256.Sum256([]byte(userID))
	return &s.shards[sum[0]]
}

// hasTag reports whether id has the length of an ID and starts with a hex
// user tag, which is all shardOfID needs.
func hasTag(id string) bool {
	if len(id) != store.IDLen {
		return false
	}
	for i := range store.TagLen {
		if c := id[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

// add inserts e, owned by userID, into the shard. The caller holds mu.
func (sh *shard) add(e *entry, userID string) {
	u := sh.users[userID]
	if u == nil {
		// The index owns its copy: the caller's string may pin a larger
		// buffer (a request body) for as long as the session lives.
		u = &userIndex{id: strings.Clone(userID)}
		sh.users[u.id] = u
	}
	e.owner = u
	i := len(u.entries)
	for i > 0 && u.entries[i-1].created > e.created {
		i--
	}
	u.entries = slices.Insert(u.entries, i, e)
	sh.sessions[e.id] = e
	sh.heapPush(e)
}

// remove deletes e from the map and the heap, which marks it dead in its
// user's index. The caller holds mu.
func (sh *shard) remove(e *entry) {
	sh.drop(e)
	u := e.owner
	switch {
	case u.dead == len(u.entries):
		delete(sh.users, u.id)
	case u.dead > len(u.entries)/2:
		u.compact()
	}
}

// drop is remove without the upkeep of the user's index, for callers
// that are walking that index.
func (sh *shard) drop(e *entry) {
	delete(sh.sessions, e.id)
	sh.heapRemove(int(e.heapIdx))
	e.owner.dead++
}

// prune removes u's expired sessions and compacts its index, whose entries
// are then exactly the live sessions, oldest first. It reports whether u
// still has sessions (else it is no longer in the shard). The caller holds
// mu for writing.
func (sh *shard) prune(u *userIndex, now int64) bool {
	for _, e := range u.entries {
		if e.stored() && !e.live(now) {
			sh.drop(e)
		}
	}
	if u.dead == len(u.entries) {
		delete(sh.users, u.id)
		return false
	}
	if u.dead > 0 {
		u.compact()
	}
	return true
}

// sweep removes the shard's expired sessions, sweepBatch per lock hold.
func (sh *shard) sweep(now int64) int {
	n := 0
	for {
		sh.mu.RLock()
		due := len(sh.expiry) > 0 && !sh.expiry[0].live(now)
		sh.mu.RUnlock()
		if !due {
			return n
		}
		sh.mu.Lock()
		for range sweepBatch {
			if len(sh.expiry) == 0 || sh.expiry[0].live(now) {
				break
			}
			sh.remove(sh.expiry[0])
			n++
		}
		sh.mu.Unlock()
	}
}

// The expiry heap, written out rather than through container/heap to keep
// entry.heapIdx in step without interface calls.

func (sh *shard) heapPush(e *entry) {
	e.heapIdx = int32(len(sh.expiry))
	sh.expiry = append(sh.expiry, e)
	sh.heapUp(int(e.heapIdx))
}

func (sh *shard) heapRemove(i int) {
	h := sh.expiry
	last := len(h) - 1
	if i != last {
		h[i], h[last] = h[last], h[i]
		h[i].heapIdx = int32(i)
	}
	h[last].heapIdx = -1
	h[last] = nil
	sh.expiry = h[:last]
	if i != last {
		sh.heapFix(i)
	}
	if c := cap(sh.expiry); c > 1024 && c > 4*len(sh.expiry) {
		sh.expiry = slices.Clip(slices.Clone(sh.expiry))
	}
}

func (sh *shard) heapFix(i int) {
	if !sh.heapDown(i) {
		sh.heapUp(i)
	}
}

func (sh *shard) heapUp(i int) {
	h := sh.expiry
	for i > 0 {
		p := (i - 1) / 2
		if h[p].expires <= h[i].expires {
			break
		}
		h[p], h[i] = h[i], h[p]
		h[p].heapIdx, h[i].heapIdx = int32(p), int32(i)
		i = p
	}
}

// heapDown reports whether it moved the element.
func (sh *shard) heapDown(i0 int) bool {
	h := sh.expiry
	i := i0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h[r].expires < h[l].expires {
			c = r
		}
		if h[i].expires <= h[c].expires {
			break
		}
		h[i], h[c] = h[c], h[i]
		h[i].heapIdx, h[c].heapIdx = int32(i), int32(c)
		i = c
	}
	return i > i0
}

// Errors of the hot paths, made once so that a miss allocates nothing.
var (
	errGetNotFound   = fmt.Errorf("memory: get session: %w", store.ErrNotFound)
	errTouchNotFound = fmt.Errorf("memory: touch session: %w", store.ErrNotFound)
)

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, in *store.Session, opts store.CreateOptions) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: create session: %w", err)
	}
	now := s.now()
	p, err := store.PrepareCreate(in, now)
	if err != nil {
		return nil, fmt.Errorf("memory: create session: %w", err)
	}
	if !representable(p.CreatedAt, p.UpdatedAt, p.LastSeenAt, p.ExpiresAt) {
		return nil, fmt.Errorf("memory: create session: %w: time out of range", store.ErrInvalid)
	}
	e := newEntry(p)
	nowMs := now.UnixMilli()
	sh := s.shardOfID(p.ID)

	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old := sh.sessions[p.ID]; old != nil {
		if old.live(nowMs) {
			return nil, fmt.Errorf("memory: create session: %w", store.ErrExists)
		}
		sh.remove(old)
	}
	var evicted []string
	// Without a cap, Create leaves expired sessions to the janitor and
	// costs O(1) however many sessions the user has.
	if u := sh.users[p.UserID]; u != nil && opts.MaxPerUser > 0 && sh.prune(u, nowMs) {
		if over := len(u.entries) - opts.MaxPerUser + 1; over > 0 {
			if opts.OnLimit == store.Refuse {
				return nil, fmt.Errorf("memory: create session: %w (limit %d)", store.ErrTooManySessions, opts.MaxPerUser)
			}
			victims := slices.Clone(u.entries)
			// Soonest expiry first; the index order (oldest first) breaks ties.
			slices.SortStableFunc(victims, func(a, b *entry) int { return cmp.Compare(a.expires, b.expires) })
			for _, v := range victims[:over] {
				evicted = append(evicted, v.id)
				sh.remove(v)
			}
		}
	}
	sh.add(e, p.UserID)
	return evicted, nil
}

// Get implements store.Store. It allocates only the returned session.
func (s *Store) Get(ctx context.Context, id string) (*store.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: get session: %w", err)
	}
	// Only valid IDs are ever stored, so a map miss rejects any other
	// malformed ID as surely as store.ValidID, at a fraction of its cost.
	if !hasTag(id) {
		return nil, errGetNotFound
	}
	now := s.now().UnixMilli()
	sh := s.shardOfID(id)
	sh.mu.RLock()
	e := sh.sessions[id]
	if e == nil || !e.live(now) {
		sh.mu.RUnlock()
		return nil, errGetNotFound
	}
	out := e.session()
	sh.mu.RUnlock()
	return out, nil
}

// Touch implements store.Store.
func (s *Store) Touch(ctx context.Context, id string, lastSeen, expiresAt time.Time) (*store.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: touch session: %w", err)
	}
	now := s.now()
	if err := store.ValidateTouch(lastSeen, expiresAt, now); err != nil {
		return nil, fmt.Errorf("memory: touch session: %w", err)
	}
	if !representable(lastSeen, expiresAt) {
		return nil, fmt.Errorf("memory: touch session: %w: time out of range", store.ErrInvalid)
	}
	if !store.ValidID(id) {
		return nil, errTouchNotFound
	}
	sh := s.shardOfID(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.sessions[id]
	if e == nil || !e.live(now.UnixMilli()) {
		return nil, errTouchNotFound
	}
	e.seen = lastSeen.UnixMilli()
	e.expires = expiresAt.UnixMilli()
	sh.heapFix(int(e.heapIdx))
	return e.session(), nil
}

// UpdateUser implements store.Store.
func (s *Store) UpdateUser(ctx context.Context, userID string, user json.RawMessage) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memory: update user: %w", err)
	}
	if err := store.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("memory: update user: %w", err)
	}
	if err := store.ValidateUser(user); err != nil {
		return 0, fmt.Errorf("memory: update user: %w", err)
	}
	var stored json.RawMessage
	if len(user) > 0 {
		// One copy shared by all the user's sessions: the caller may reuse
		// its buffer, and a stored User is read-only.
		stored = slices.Clip(append(json.RawMessage(nil), user...))
	}
	now := s.now().UnixMilli()
	sh := s.shardOfUser(userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.users[userID]
	if u == nil || !sh.prune(u, now) {
		return 0, nil
	}
	for _, e := range u.entries {
		e.user, e.updated = stored, now
	}
	return len(u.entries), nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: delete session: %w", err)
	}
	if !store.ValidID(id) {
		return nil // no session can have this ID
	}
	sh := s.shardOfID(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e := sh.sessions[id]; e != nil {
		sh.remove(e)
	}
	return nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, userID string) ([]*store.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memory: list sessions: %w", err)
	}
	if err := store.ValidateUserID(userID); err != nil {
		return nil, fmt.Errorf("memory: list sessions: %w", err)
	}
	now := s.now().UnixMilli()
	sh := s.shardOfUser(userID)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	u := sh.users[userID]
	if u == nil {
		return []*store.Session{}, nil
	}
	out := make([]*store.Session, 0, len(u.entries)-u.dead)
	for _, e := range u.entries {
		if e.stored() && e.live(now) {
			out = append(out, e.session())
		}
	}
	return out, nil
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, userID string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memory: delete user sessions: %w", err)
	}
	if err := store.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("memory: delete user sessions: %w", err)
	}
	now := s.now().UnixMilli()
	sh := s.shardOfUser(userID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	u := sh.users[userID]
	if u == nil {
		return 0, nil
	}
	n := 0
	for _, e := range u.entries {
		if !e.stored() {
			continue
		}
		if e.live(now) {
			n++
		}
		sh.drop(e)
	}
	delete(sh.users, userID)
	return n, nil
}

// Count implements store.Store.
func (s *Store) Count(ctx context.Context, userID string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("memory: count sessions: %w", err)
	}
	if err := store.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("memory: count sessions: %w", err)
	}
	now := s.now().UnixMilli()
	sh := s.shardOfUser(userID)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	n := 0
	if u := sh.users[userID]; u != nil {
		for _, e := range u.entries {
			if e.stored() && e.live(now) {
				n++
			}
		}
	}
	return n, nil
}
