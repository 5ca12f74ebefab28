// Package nearcache keeps hot sessions in process memory in front of a
// shared store (store/redis), and keeps every instance's copy honest
// through Redis pub/sub. Start with New; the result is a store.Store to
// hand to manager.New in place of the backend.
//
// # Staleness bound
//
// Every write made through a Cache (Touch, UpdateUser, Delete, DeleteUser,
// a Create that evicts) drops the affected entries locally before it
// returns and publishes their session IDs or user ID on one channel per
// key prefix; every Cache listening on that channel drops them too,
// typically within a millisecond. A write that fails does the same unless
// its error proves nothing changed (invalid input, ErrExists,
// ErrTooManySessions): an ErrUnavailable may follow a write that happened,
// such as a revocation done on the master and not acknowledged by enough
// replicas in time. Messages carry session IDs and user IDs, never tokens.
//
// A message can be lost (a publisher that fails after its write, a
// subscriber whose connection breaks). Two rules bound the damage:
//
//   - every entry is served for at most Options.TTL (default 5 s) after it
//     was read from the backend, so a revoked, updated or expired session
//     is seen as such by every instance at most TTL after the change,
//     whatever happens to the messages;
//   - while the subscription is not confirmed, the cache is bypassed, and
//     whenever it is (re)established the whole cache is dropped, so what
//     was missed while it was down is never served.
//
// An entry is never served at or after its session's ExpiresAt: the near
// cache cannot extend a session.
//
// Writes made to the backend without a Cache (another program, redis-cli)
// publish nothing: instances see them after at most TTL.
package nearcache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/store"
)

// Defaults of a zero Options.
const (
	DefaultTTL        = 5 * time.Second
	DefaultMaxEntries = 100_000
	// DefaultChannelSuffix follows the key prefix in the channel name:
	// "sessiond:" gives "sessiond:invalidate".
	DefaultChannelSuffix = "invalidate"
)

// Options configure a Cache. The zero value is ready to use with the
// Redis store's default key prefix.
type Options struct {
	// TTL is how long an entry is served without asking the backend: the
	// staleness bound when an invalidation message is lost. Default:
	// DefaultTTL (5 s).
	TTL time.Duration
	// MaxEntries bounds the sessions held in memory; past it, arbitrary
	// entries make room. Default: DefaultMaxEntries.
	MaxEntries int
	// KeyPrefix is the backend's key prefix (redis.Options.KeyPrefix):
	// instances sharing a prefix share the invalidation channel
	// KeyPrefix+"invalidate". Default: "sessiond:".
	KeyPrefix string
	// Now is the cache's clock, for TTLs and ExpiresAt. Default: time.Now.
	Now func() time.Time
	// Logger receives subscription state changes and publish failures
	// (never a token). Default: slog.Default().
	Logger *slog.Logger
}

// Stats are counters since New.
type Stats struct {
	Hits, Misses  uint64
	Invalidations uint64 // messages received (own ones included)
	Drops         uint64 // whole-cache drops: (re)subscriptions and losses
	PublishErrors uint64
}

const shardCount = 64

// Cache is a store.Store that serves Get from memory when it can and
// passes everything else to its backend. Close stops its subscriber.
type Cache struct {
	next   store.Store
	client goredis.UniversalClient
	ttl    int64 // nanoseconds
	now    func() time.Time
	log    *slog.Logger
	perCap int

	channel string
	// live is set while the subscription is confirmed; Get bypasses the
	// cache while it is not.
	live atomic.Bool
	// gen changes on every invalidation and drop: a Get that read the
	// backend before a change does not cache what it read.
	gen atomic.Uint64

	shards [shardCount]shard
	// users indexes cached IDs by user, for user-wide invalidations.
	usersMu sync.Mutex
	users   map[string][]string

	misses, invalidations, drops, pubErrs atomic.Uint64

	// ready is closed when the first subscription is confirmed.
	ready     chan struct{}
	readyOnce sync.Once
	cancel    context.CancelFunc
	psMu      sync.Mutex
	ps        *goredis.PubSub // the current subscription, closed by Close
	done      chan struct{}
	closeOnce sync.Once
}

type shard struct {
	mu      sync.RWMutex
	entries map[string]*entry
	// hits is counted per shard: one counter shared by every core would
	// cost more than the hit itself.
	hits atomic.Uint64
	_    [32]byte // keep neighbouring shards off one cache line
}

// entry is an immutable copy of a session and when it was read.
type entry struct {
	sess    store.Session
	fetched int64 // unix nanoseconds
	expires int64 // sess.ExpiresAt, unix nanoseconds
}

var _ store.Store = (*Cache)(nil)

// New returns a Cache in front of next (normally a *redis.Store on
// client) and starts its subscriber on client. Until the subscription is
// confirmed every Get goes to next; WaitReady waits for it.
func New(next store.Store, client goredis.UniversalClient, opts Options) (*Cache, error) {
	if next == nil || client == nil {
		return nil, errors.New("nearcache: new: nil store or client")
	}
	if opts.TTL < 0 || opts.MaxEntries < 0 {
		return nil, fmt.Errorf("nearcache: new: negative TTL or MaxEntries")
	}
	prefix := opts.KeyPrefix
	if prefix == "" {
		prefix = "sessiond:"
	}
	c := &Cache{
		next:    next,
		client:  client,
		ttl:     int64(cmpOr(opts.TTL, DefaultTTL)),
		now:     opts.Now,
		log:     opts.Logger,
		perCap:  max(1, cmpOr(opts.MaxEntries, DefaultMaxEntries)/shardCount),
		channel: prefix + DefaultChannelSuffix,
		users:   make(map[string][]string),
		ready:   make(chan struct{}),
		done:    make(chan struct{}),
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	for i := range c.shards {
		c.shards[i].entries = make(map[string]*entry)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go c.subscribe(ctx)
	return c, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Channel is the pub/sub channel of the cache's key prefix.
func (c *Cache) Channel() string { return c.channel }

// WaitReady waits until the subscription is confirmed (the cache is in
// use) or ctx is done.
func (c *Cache) WaitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("nearcache: wait ready: %w", ctx.Err())
	}
}

// Live reports whether the subscription is confirmed, that is whether
// Get may be served from memory.
func (c *Cache) Live() bool { return c.live.Load() }

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	var hits uint64
	for i := range c.shards {
		hits += c.shards[i].hits.Load()
	}
	return Stats{
		Hits: hits, Misses: c.misses.Load(), Invalidations: c.invalidations.Load(),
		Drops: c.drops.Load(), PublishErrors: c.pubErrs.Load(),
	}
}

// Close stops the subscriber and waits for it. It does not close the
// backend or the client. Close is idempotent and returns nil.
func (c *Cache) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		// A blocked read does not watch ctx: closing the connection
		// ends it.
		c.psMu.Lock()
		if c.ps != nil {
			_ = c.ps.Close()
		}
		c.psMu.Unlock()
	})
	<-c.done
	c.live.Store(false)
	c.dropAll()
	return nil
}

// pingEvery is how often the subscriber checks a quiet connection: a
// connection that answers no PING within one more period is given up
// (cache dropped and bypassed) and dialled anew. Bounded by the TTL, so a
// dead subscription is noticed within about TTL.
func (c *Cache) pingEvery() time.Duration {
	return min(time.Duration(c.ttl)/2, 2*time.Second)
}

// subscribe owns the pub/sub connection until Close.
func (c *Cache) subscribe(ctx context.Context) {
	defer close(c.done)
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		c.session(ctx)
		c.down()
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
			backoff = min(2*backoff, time.Second)
		}
	}
}

// session runs one subscription until its connection fails or goes quiet.
func (c *Cache) session(ctx context.Context) {
	c.psMu.Lock()
	if ctx.Err() != nil { // Close ran before this subscription existed
		c.psMu.Unlock()
		return
	}
	ps := c.client.Subscribe(ctx, c.channel)
	c.ps = ps
	c.psMu.Unlock()
	defer ps.Close()
	awaitingPong := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, c.pingEvery())
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne interface{ Timeout() bool }
			if !errors.As(err, &ne) || !ne.Timeout() || awaitingPong {
				if c.live.Load() {
					c.log.Warn("nearcache: invalidation channel lost; cache bypassed until it is back", "channel", c.channel, "err", err.Error())
				}
				return
			}
			if err := ps.Ping(ctx); err != nil {
				return
			}
			awaitingPong = true
			continue
		}
		awaitingPong = false
		switch m := msg.(type) {
		case *goredis.Subscription:
			if m.Kind == "subscribe" && m.Channel == c.channel {
				// What was published while we were not listening is
				// lost: start from nothing.
				c.dropAll()
				c.live.Store(true)
				c.readyOnce.Do(func() { close(c.ready) })
			}
		case *goredis.Message:
			c.invalidations.Add(1)
			c.apply(m.Payload)
		case *goredis.Pong:
		}
	}
}

// down marks the subscription lost: Get bypasses the cache, which is
// dropped.
func (c *Cache) down() {
	c.live.Store(false)
	c.dropAll()
}

// Messages: "s:" + session IDs separated by ',' or "u:" + one user ID.
// Neither holds a token; a user ID may hold ',' so it travels alone.
const (
	kindSessions = "s:"
	kindUser     = "u:"
)

func (c *Cache) apply(payload string) {
	switch {
	case strings.HasPrefix(payload, kindSessions):
		for id := range strings.SplitSeq(payload[len(kindSessions):], ",") {
			c.dropID(id)
		}
	case strings.HasPrefix(payload, kindUser):
		c.dropUser(payload[len(kindUser):])
	default:
		// A message we do not understand may be a newer version's
		// invalidation: be safe.
		c.dropAll()
	}
}

func (c *Cache) shardOf(id string) *shard {
	// IDs end in base64url of a SHA-256: any two characters are uniform.
	n := len(id)
	if n < 3 {
		return &c.shards[0]
	}
	return &c.shards[(uint(id[n-2])*31+uint(id[n-3]))%shardCount]
}

// The user index and the shards change together, under usersMu and then
// the shard's lock: c.users holds exactly the cached IDs, each under its
// user. dropUser relies on the first half (an entry it cannot find would
// outlive "sign out everywhere"); MaxEntries bounds the index through the
// second.

// unindex removes id from userID's index. The caller holds usersMu.
func (c *Cache) unindex(userID, id string) {
	ids := c.users[userID]
	i := slices.Index(ids, id)
	if i < 0 {
		return
	}
	if len(ids) == 1 {
		delete(c.users, userID)
		return
	}
	c.users[userID] = slices.Delete(ids, i, i+1)
}

func (c *Cache) dropID(id string) {
	c.gen.Add(1)
	c.usersMu.Lock()
	defer c.usersMu.Unlock()
	sh := c.shardOf(id)
	sh.mu.Lock()
	e := sh.entries[id]
	delete(sh.entries, id)
	sh.mu.Unlock()
	if e != nil {
		c.unindex(e.sess.UserID, id)
	}
}

func (c *Cache) dropUser(userID string) {
	c.gen.Add(1)
	c.usersMu.Lock()
	defer c.usersMu.Unlock()
	for _, id := range c.users[userID] {
		sh := c.shardOf(id)
		sh.mu.Lock()
		delete(sh.entries, id)
		sh.mu.Unlock()
	}
	delete(c.users, userID)
}

func (c *Cache) dropAll() {
	c.gen.Add(1)
	c.drops.Add(1)
	c.usersMu.Lock()
	defer c.usersMu.Unlock()
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.entries)
		sh.mu.Unlock()
	}
	clear(c.users)
}

// Get implements store.Store: from memory when the entry is younger than
// TTL and the session has not expired, otherwise from the backend.
func (c *Cache) Get(ctx context.Context, id string) (*store.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("nearcache: get session: %w: %w", store.ErrUnavailable, err)
	}
	now := c.now().UnixNano()
	sh := c.shardOf(id)
	sh.mu.RLock()
	e := sh.entries[id]
	sh.mu.RUnlock()
	if e != nil && now-e.fetched < c.ttl && now < e.expires && c.live.Load() {
		sh.hits.Add(1)
		s := e.sess // the caller owns its copy; User stays shared, read-only
		return &s, nil
	}
	c.misses.Add(1)
	gen := c.gen.Load()
	live := c.live.Load()
	s, err := c.next.Get(ctx, id)
	if err != nil {
		if e != nil {
			c.dropID(id)
		}
		return nil, err
	}
	if live {
		c.put(s, now, gen)
	}
	return s, nil
}

// put caches a copy of s, read from the backend at now, unless an
// invalidation or drop happened since gen was read.
func (c *Cache) put(s *store.Session, now int64, gen uint64) {
	e := &entry{sess: *s, fetched: now, expires: s.ExpiresAt.UnixNano()}
	c.usersMu.Lock()
	defer c.usersMu.Unlock()
	sh := c.shardOf(s.ID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	// Checked under the shard lock, which every drop takes after bumping
	// gen: a drop either sees this entry or makes this check fail.
	if c.gen.Load() != gen || !c.live.Load() {
		return
	}
	if old := sh.entries[s.ID]; old != nil {
		// A refresh of an entry past its TTL: indexed already.
		sh.entries[s.ID] = e
		if old.sess.UserID != s.UserID {
			c.unindex(old.sess.UserID, s.ID)
			c.users[s.UserID] = append(c.users[s.UserID], s.ID)
		}
		return
	}
	if len(sh.entries) >= c.perCap {
		for k, v := range sh.entries {
			delete(sh.entries, k)
			c.unindex(v.sess.UserID, k)
			break
		}
	}
	sh.entries[s.ID] = e
	c.users[s.UserID] = append(c.users[s.UserID], s.ID)
}

// publish tells every instance (this one included, already done locally)
// to drop payload's entries. A failure is logged and counted, not
// returned: the write it follows has happened, and the TTL bounds how
// long other instances may serve the old session.
func (c *Cache) publish(ctx context.Context, payload string) {
	// Publish even when the request's ctx is done: the write happened.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := c.client.Publish(ctx, c.channel, payload).Err(); err != nil {
		c.pubErrs.Add(1)
		c.log.Warn("nearcache: invalidation not published; other instances may serve the old session until their TTL", "channel", c.channel, "err", err.Error())
	}
}

func (c *Cache) invalidateIDs(ctx context.Context, ids ...string) {
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		c.dropID(id)
	}
	c.publish(ctx, kindSessions+strings.Join(ids, ","))
}

func (c *Cache) invalidateUser(ctx context.Context, userID string) {
	c.dropUser(userID)
	c.publish(ctx, kindUser+userID)
}

// rejected reports whether err proves that the write changed nothing: its
// input was refused before any storage was touched. Any other error, above
// all ErrUnavailable, may follow a write that happened (a revocation done
// on the master whose WAIT for replicas timed out, a reply lost on the
// way back), so the write's entries are invalidated as if it had worked.
func rejected(err error) bool {
	return errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrTooLarge)
}

// Create implements store.Store. Sessions it evicts are invalidated
// everywhere; after a failure that may have evicted some (their IDs
// unknown), every session of the user is.
func (c *Cache) Create(ctx context.Context, s *store.Session, opts store.CreateOptions) ([]string, error) {
	evicted, err := c.next.Create(ctx, s, opts)
	switch {
	case err == nil:
		c.invalidateIDs(ctx, evicted...)
	case rejected(err) || errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrTooManySessions) || s == nil:
	default:
		c.invalidateUser(ctx, s.UserID)
	}
	return evicted, err
}

// Touch implements store.Store and invalidates the session everywhere.
func (c *Cache) Touch(ctx context.Context, id string, lastSeen, expiresAt time.Time) (*store.Session, error) {
	s, err := c.next.Touch(ctx, id, lastSeen, expiresAt)
	if !rejected(err) && store.ValidID(id) {
		c.invalidateIDs(ctx, id)
	}
	return s, err
}

// UpdateUser implements store.Store and invalidates the user's sessions
// everywhere.
func (c *Cache) UpdateUser(ctx context.Context, userID string, user json.RawMessage) (int, error) {
	n, err := c.next.UpdateUser(ctx, userID, user)
	if !rejected(err) {
		c.invalidateUser(ctx, userID)
	}
	return n, err
}

// Delete implements store.Store and invalidates the session everywhere.
func (c *Cache) Delete(ctx context.Context, id string) error {
	err := c.next.Delete(ctx, id)
	if !rejected(err) && store.ValidID(id) {
		c.invalidateIDs(ctx, id)
	}
	return err
}

// DeleteUser implements store.Store ("sign out everywhere") and
// invalidates the user's sessions everywhere.
func (c *Cache) DeleteUser(ctx context.Context, userID string) (int, error) {
	n, err := c.next.DeleteUser(ctx, userID)
	if !rejected(err) {
		c.invalidateUser(ctx, userID)
	}
	return n, err
}

// List implements store.Store; it always asks the backend.
func (c *Cache) List(ctx context.Context, userID string) ([]*store.Session, error) {
	return c.next.List(ctx, userID)
}

// Count implements store.Store; it always asks the backend.
func (c *Cache) Count(ctx context.Context, userID string) (int, error) {
	return c.next.Count(ctx, userID)
}
