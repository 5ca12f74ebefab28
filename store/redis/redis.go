// Package redis is the production session store: store.Store on Redis
// through github.com/redis/go-redis/v9. Start with New; it takes any
// goredis.UniversalClient, so a standalone server, Sentinel (a failover
// client) and Redis Cluster all work.
//
// # Layout
//
// With the default prefix "sessiond:", a session of user "alice" whose ID
// is "1a2bXyz..." is stored as
//
//	sessiond:session:{1a2b}Xyz...   the session, expiring with it (PX)
//	sessiond:user:{1a2b}:alice      sorted set: member = session ID,
//	                                score = its expiry in unix ms
//	sessiond:seq:{1a2b}             creation counter of the tag: orders
//	                                sessions created in one millisecond
//
// The first four characters of every session ID are the user's tag (see
// store.UserTag), so a session key and its user's index share a Redis
// Cluster hash slot. Every multi-key write is one Lua script in that slot:
// atomic on one server and free of CROSSSLOT errors on a cluster. Stale
// index members are pruned by every script that touches the index, and the
// index expires with its longest-lived session.
//
// Expiry is decided by Options.Now, never by the server's clock alone:
// keys expire by TTL, and every read also checks the stored expiry, so an
// expired session is never returned whatever the TTL lag.
//
// Redis must not evict keys on its own: with maxmemory-policy allkeys-*,
// an index could vanish while its sessions live on, and "sign out
// everywhere" would miss them. CheckConfig reports such a server.
//
// # Errors
//
// Input is validated before any round trip (store.ErrInvalid,
// store.ErrTooLarge). A missing or expired session is store.ErrNotFound.
// Every other failure (network, server error, a cancelled or expired ctx)
// wraps store.ErrUnavailable together with its cause, so callers answer
// "try again" rather than "signed out", and errors.Is(err,
// context.Canceled) still holds. Errors never contain a token.
//
// go-redis bounds calls by its own timeouts; set
// UniversalOptions.ContextTimeoutEnabled so that a request's ctx deadline
// bounds them too.
package redis

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/store"
)

// DefaultKeyPrefix is the KeyPrefix of a zero Options.
const DefaultKeyPrefix = "sessiond:"

// Options configure a Store. The zero value is ready to use.
type Options struct {
	// KeyPrefix starts every key the store writes, so that several
	// applications or environments can share one Redis. It must not
	// contain '{' or '}': Redis Cluster would then hash the prefix instead
	// of the user's tag. Default: DefaultKeyPrefix ("sessiond:").
	KeyPrefix string
	// Now is the store's clock; tests inject a fake one. Default: time.Now.
	Now func() time.Time
	// WaitReplicas, when positive, makes every revocation (Delete,
	// DeleteUser) wait until that many replicas have acknowledged it
	// (Redis WAIT, on the connection that ran it), so that a sign-out the
	// caller was told about survives a failover to a replica. If fewer
	// acknowledge within WaitTimeout, the call fails with
	// store.ErrUnavailable: the revocation is done on the master and not
	// yet safe; retrying it is harmless.
	//
	// On Redis Cluster the count is of the replicas of the master that
	// serves the user's slot (all of a user's keys share one), so set it
	// to at most the smallest number of replicas a master has: on a
	// master with fewer, every revocation fails after WaitTimeout. While
	// a slot moves (resharding) or right after a failover, a revocation
	// answered MOVED or ASK fails with store.ErrUnavailable without having
	// run, and the store asks the cluster client to reload its slot map,
	// so a retry reaches the slot's new master. Default: 0, no wait.
	WaitReplicas int
	// WaitTimeout bounds that wait; keep it well under the client's
	// ReadTimeout. Default: DefaultWaitTimeout.
	WaitTimeout time.Duration
	// AutoPipelineGets batches concurrent Gets: a Get joins the next
	// pipeline of GETs (go-redis's auto-pipeliner, deferred face) instead
	// of taking a connection and a round trip of its own, which saves
	// system calls and CPU when many requests resolve at once. A Get still
	// ends with its ctx. Writes never ride the pipeline: a batch retried
	// after a network error could run a non-idempotent script twice. At
	// most MaxQueuedGets wait at once; more fail as store.ErrUnavailable.
	//
	// A Get whose ctx ended keeps its place in that bound until its batch
	// is answered or fails: batches run on go-redis's own timeouts and
	// retries, not on their callers' ctx, and one at a time (per master
	// on a cluster), so while Redis stalls a batch holds the line as long
	// as go-redis keeps trying. Under load the bound is then reached and
	// Gets fail at once until Redis answers again (TestAutoPipelineGetsBounded
	// fills it so during a CLIENT PAUSE).
	// Closing the client first sends the queued Gets, which while Redis
	// stalls takes as long (go-redis gives up after 30 s).
	//
	// On Redis Cluster each master gets a pipeliner of its own, on its own
	// client (MasterForKey), so a master that stops answering delays only
	// its own slots' Gets. (The cluster client's single pipeliner splits
	// the slots into GOMAXPROCS ranges that mix masters: with one master
	// frozen, Gets of another master's users timed out behind it.) A Get
	// answered MOVED or ASK, or sent to a master the cluster client has
	// let go, is sent again as a plain GET, which follows the redirect.
	// MaxQueuedGets then bounds each master's queue.
	//
	// It needs a *redis.Client (standalone or Sentinel) or a
	// *redis.ClusterClient; New refuses it on a *redis.Ring. go-redis marks
	// its auto-pipeliner experimental, so this is off by default. The
	// pipeliner belongs to the client: go-redis keeps one per client, the
	// options of its first user win, and New refuses a client whose
	// pipeliner was made with other options (on a cluster, a master whose
	// pipeliner was made so gets plain Gets); closing the client stops it.
	// Default: false.
	AutoPipelineGets bool
}

// Store is a store.Store on Redis. It is safe for concurrent use. It does
// not own its client: the caller closes the client after the last call.
type Store struct {
	client goredis.UniversalClient
	now    func() time.Time
	// Key prefixes, precomputed: "<prefix>session:{", "<prefix>user:{"
	// and "<prefix>seq:{".
	sessionBase string
	userBase    string
	seqBase     string

	waitReplicas int           // see Options.WaitReplicas
	waitTimeout  time.Duration // see Options.WaitTimeout
	// With Options.AutoPipelineGets, the pipeliner of Get (gets), or on
	// Redis Cluster one per master (clusterGets); otherwise both nil.
	gets        *goredis.AutoPipeliner
	clusterGets *clusterGets
}

var _ store.Store = (*Store)(nil)

// New returns a Store on client. It does not contact Redis; call
// CheckConfig at startup to vet the server.
func New(client goredis.UniversalClient, opts Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("redis: new store: nil client")
	}
	prefix, err := keyPrefix(opts)
	if err != nil {
		return nil, fmt.Errorf("redis: new store: %w", err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	wait, err := waitOptions(opts)
	if err != nil {
		return nil, err
	}
	var gets *goredis.AutoPipeliner
	var cgets *clusterGets
	if opts.AutoPipelineGets {
		if cc, ok := client.(*goredis.ClusterClient); ok {
			cgets = &clusterGets{cluster: cc}
		} else if gets, err = newGetPipeliner(client); err != nil {
			return nil, fmt.Errorf("redis: new store: %w", err)
		}
	}
	return &Store{
		client:      client,
		now:         now,
		sessionBase: prefix + "session:{",
		userBase:    prefix + "user:{",
		seqBase:     prefix + "seq:{",

		waitReplicas: wait.WaitReplicas,
		waitTimeout:  wait.WaitTimeout,
		gets:         gets,
		clusterGets:  cgets,
	}, nil
}

// keyPrefix returns opts.KeyPrefix or its default, checked: the Store and
// the Coordinator share it.
func keyPrefix(opts Options) (string, error) {
	prefix := cmp.Or(opts.KeyPrefix, DefaultKeyPrefix)
	if strings.ContainsAny(prefix, "{}") {
		return "", fmt.Errorf("key prefix %q contains '{' or '}', which would break Redis Cluster hash tags", prefix)
	}
	return prefix, nil
}

// sessionKey returns the key of a valid session ID.
func (s *Store) sessionKey(id string) string {
	return s.sessionBase + id[:store.TagLen] + "}" + id[store.TagLen:]
}

// userKey returns the index key of a valid user ID.
func (s *Store) userKey(userID string) string {
	return s.userBase + store.UserTag(userID) + "}:" + userID
}

// userBaseOf returns the index key of the user of session ID, without the
// user ID: scripts that find a session by ID read the user from it.
func (s *Store) userBaseOf(id string) string {
	return s.userBase + id[:store.TagLen] + "}:"
}

// fail wraps a failed round trip. Any error but redis.Nil means the store
// could not answer: it wraps store.ErrUnavailable and the cause, so a
// cancelled or expired ctx also satisfies errors.Is(err, context.Canceled)
// (or DeadlineExceeded).
func fail(op string, err error) error {
	if goredis.IsOOMError(err) {
		return fmt.Errorf("redis: %s: %w: %w: %w", op, store.ErrUnavailable, store.ErrFull, err)
	}
	return fmt.Errorf("redis: %s: %w: %w", op, store.ErrUnavailable, err)
}

// ctxErr fails fast on a ctx that is already done, before any round trip,
// so that the outcome does not depend on the client's dial and retry
// timing.
func ctxErr(op string, ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fail(op, err)
	}
	return nil
}

func msArg(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// Create implements store.Store.
func (s *Store) Create(ctx context.Context, sess *store.Session, opts store.CreateOptions) ([]string, error) {
	const op = "create session"
	now := s.now()
	c, err := store.PrepareCreate(sess, now)
	if err != nil {
		return nil, fmt.Errorf("redis: %s: %w", op, err)
	}
	refuse := "0"
	switch opts.OnLimit {
	case store.EvictOldest:
	case store.Refuse:
		refuse = "1"
	default:
		return nil, fmt.Errorf("redis: %s: %w: unknown limit policy %d", op, store.ErrInvalid, opts.OnLimit)
	}
	if err := ctxErr(op, ctx); err != nil {
		return nil, err
	}
	res, err := createScript.Run(ctx, s.client,
		[]string{s.sessionKey(c.ID), s.userKey(c.UserID), s.seqBase + c.ID[:store.TagLen] + "}"},
		encode(c), msArg(now), msArg(c.ExpiresAt), max(opts.MaxPerUser, 0), refuse, c.ID, s.sessionBase,
	).Slice()
	if err != nil {
		return nil, fail(op, err)
	}
	if len(res) == 0 {
		return nil, fail(op, fmt.Errorf("empty script reply"))
	}
	switch res[0] {
	case int64(createOK):
	case int64(createExists):
		return nil, fmt.Errorf("redis: %s: %w", op, store.ErrExists)
	case int64(createRefused):
		return nil, fmt.Errorf("redis: %s: %w", op, store.ErrTooManySessions)
	default:
		return nil, fail(op, fmt.Errorf("unexpected script status %v", res[0]))
	}
	var evicted []string
	for _, v := range res[1:] {
		id, ok := v.(string)
		if !ok {
			return nil, fail(op, fmt.Errorf("unexpected evicted ID %T", v))
		}
		evicted = append(evicted, id)
	}
	return evicted, nil
}

// Get implements store.Store with exactly one round trip, a GET.
func (s *Store) Get(ctx context.Context, id string) (*store.Session, error) {
	const op = "get session"
	if !store.ValidID(id) {
		return nil, fmt.Errorf("redis: %s: %w", op, store.ErrNotFound)
	}
	if err := ctxErr(op, ctx); err != nil {
		return nil, err
	}
	v, err := s.get(ctx, s.sessionKey(id))
	if err != nil {
		if errors.Is(err, goredis.Nil) {
			return nil, fmt.Errorf("redis: %s: %w", op, store.ErrNotFound)
		}
		return nil, fail(op, err)
	}
	sess, err := decode(id, v)
	if err != nil {
		return nil, fail(op, err)
	}
	// The key's TTL may lag behind (or, with an injected clock, run
	// behind) the store's clock: the stored expiry decides.
	if !s.now().Before(sess.ExpiresAt) {
		return nil, fmt.Errorf("redis: %s: %w", op, store.ErrNotFound)
	}
	return sess, nil
}

// Touch implements store.Store.
func (s *Store) Touch(ctx context.Context, id string, lastSeen, expiresAt time.Time) (*store.Session, error) {
	const op = "touch session"
	now := s.now()
	if err := store.ValidateTouch(lastSeen, expiresAt, now); err != nil {
		return nil, fmt.Errorf("redis: %s: %w", op, err)
	}
	if !store.ValidID(id) {
		return nil, fmt.Errorf("redis: %s: %w", op, store.ErrNotFound)
	}
	if err := ctxErr(op, ctx); err != nil {
		return nil, err
	}
	v, err := touchScript.Run(ctx, s.client, []string{s.sessionKey(id)},
		msArg(now), msString(lastSeen), msString(expiresAt), s.userBaseOf(id), id, s.sessionBase,
	).Text()
	if err != nil {
		if errors.Is(err, goredis.Nil) {
			return nil, fmt.Errorf("redis: %s: %w", op, store.ErrNotFound)
		}
		return nil, fail(op, err)
	}
	sess, err := decode(id, v)
	if err != nil {
		return nil, fail(op, err)
	}
	return sess, nil
}

// UpdateUser implements store.Store. The new user JSON is stored byte for
// byte as given.
func (s *Store) UpdateUser(ctx context.Context, userID string, user json.RawMessage) (int, error) {
	const op = "update user"
	if err := store.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("redis: %s: %w", op, err)
	}
	if err := store.ValidateUser(user); err != nil {
		return 0, fmt.Errorf("redis: %s: %w", op, err)
	}
	if err := ctxErr(op, ctx); err != nil {
		return 0, err
	}
	now := s.now()
	n, err := updateUserScript.Run(ctx, s.client, []string{s.userKey(userID)},
		msArg(now), msString(now), string(user), s.sessionBase,
	).Int()
	if err != nil {
		return 0, fail(op, err)
	}
	return n, nil
}

// Delete implements store.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	const op = "delete session"
	if !store.ValidID(id) {
		return nil // no such session can exist
	}
	if err := ctxErr(op, ctx); err != nil {
		return err
	}
	err := s.revoke(ctx, deleteScript, []string{s.sessionKey(id)},
		msArg(s.now()), s.userBaseOf(id), id, s.sessionBase,
	).Err()
	if err != nil {
		return fail(op, err)
	}
	return nil
}

// List implements store.Store in one round trip.
func (s *Store) List(ctx context.Context, userID string) ([]*store.Session, error) {
	const op = "list sessions"
	if err := store.ValidateUserID(userID); err != nil {
		return nil, fmt.Errorf("redis: %s: %w", op, err)
	}
	if err := ctxErr(op, ctx); err != nil {
		return nil, err
	}
	now := s.now()
	res, err := listScript.Run(ctx, s.client, []string{s.userKey(userID)},
		msArg(now), s.sessionBase,
	).StringSlice()
	if err != nil {
		return nil, fail(op, err)
	}
	type entry struct {
		s   *store.Session
		seq int64
	}
	entries := make([]entry, 0, len(res)/2)
	for i := 0; i+1 < len(res); i += 2 {
		sess, err := decode(res[i], res[i+1])
		if err != nil {
			return nil, fail(op, err)
		}
		if now.Before(sess.ExpiresAt) {
			entries = append(entries, entry{sess, seqOf(res[i+1])})
		}
	}
	// Oldest first; sessions created in the same millisecond in the order
	// they were created.
	slices.SortFunc(entries, func(a, b entry) int {
		return cmp.Or(a.s.CreatedAt.Compare(b.s.CreatedAt), cmp.Compare(a.seq, b.seq), strings.Compare(a.s.ID, b.s.ID))
	})
	list := make([]*store.Session, len(entries))
	for i, e := range entries {
		list[i] = e.s
	}
	return list, nil
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, userID string) (int, error) {
	const op = "delete user sessions"
	if err := store.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("redis: %s: %w", op, err)
	}
	if err := ctxErr(op, ctx); err != nil {
		return 0, err
	}
	n, err := s.revoke(ctx, deleteUserScript, []string{s.userKey(userID)},
		msArg(s.now()), s.sessionBase,
	).Int()
	if err != nil {
		return 0, fail(op, err)
	}
	return n, nil
}

// Count implements store.Store with one read-only ZCOUNT of the index.
func (s *Store) Count(ctx context.Context, userID string) (int, error) {
	const op = "count sessions"
	if err := store.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("redis: %s: %w", op, err)
	}
	if err := ctxErr(op, ctx); err != nil {
		return 0, err
	}
	// Live means expiry > now: an exclusive lower bound.
	n, err := s.client.ZCount(ctx, s.userKey(userID), "("+msArg(s.now()), "+inf").Result()
	if err != nil {
		return 0, fail(op, err)
	}
	return int(n), nil
}
