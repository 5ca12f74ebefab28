// Package postgres is the PostgreSQL backend of sessiond: a store.Store on a
// pgx connection pool, for teams that already run PostgreSQL and want no
// Redis. Start with New, then call Migrate once at startup.
//
// Every expiry decision (what is live, what Cleanup deletes) compares the
// expires_at column with Options.Now, passed to each statement, never with the
// database's now(): the application's clock governs, as with the Redis
// backend, so run every instance with an NTP-synchronised clock.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sessiond/sessiond/store"
)

// Options configure a Store. The zero value is usable.
type Options struct {
	// Schema holds the table. Default: "", the connection's search_path.
	// The schema must exist: Migrate creates tables, not schemas, so that
	// the store needs no CREATE privilege on the database.
	Schema string
	// Table names the sessions table; Migrate also creates Table +
	// "_schema_migrations" beside it. At most 40 bytes, so that the names
	// derived from it fit PostgreSQL's 63-byte identifiers.
	// Default: "sessions".
	Table string
	// Now is the clock every expiry decision uses. Default: time.Now.
	Now func() time.Time
	// CleanupInterval is how often a background goroutine deletes expired
	// rows (see Cleanup). Expired rows are never returned whatever the lag;
	// the cleanup only reclaims space. Negative disables it, for
	// deployments that run Cleanup from a job of their own.
	// Default: 5 minutes.
	CleanupInterval time.Duration
	// CleanupBatch is how many rows one cleanup statement deletes, which
	// bounds how long it holds row locks. Default: 1000.
	CleanupBatch int
	// Logger receives the background cleanup's failures (Warn) and counts
	// (Debug). It never sees a token. Default: slog.Default().
	Logger *slog.Logger
}

const (
	defaultTable           = "sessions"
	defaultCleanupInterval = 5 * time.Minute
	defaultCleanupBatch    = 1000
	maxTableLen            = 40
	maxIdentLen            = 63
)

// Store is a store.Store on PostgreSQL. It is safe for concurrent use by
// any number of goroutines and of sessiond instances sharing the database.
type Store struct {
	pool   *pgxpool.Pool
	now    func() time.Time
	batch  int
	logger *slog.Logger

	table      string // quoted, schema-qualified
	tableName  string // unquoted Options.Table, for derived names
	schema     string // unquoted Options.Schema
	versions   string // quoted, schema-qualified version table
	lockSpace  int32  // first key of the per-user advisory locks
	sql        queries
	onCleanup  func(deleted int) // test hook: called after each cleanup statement
	stop       context.CancelFunc
	done       chan struct{}
	closeOnce  sync.Once
	hasCleanup bool
}

var _ store.Store = (*Store)(nil)

// New returns a Store on pool. The Store does not own the pool: close it
// after Close. New does not touch the database; call Migrate before use.
// Unless Options.CleanupInterval is negative, New starts a background
// cleanup goroutine that Close stops.
func New(pool *pgxpool.Pool, opts Options) (*Store, error) {
	if pool == nil {
		return nil, errors.New("postgres: new store: nil pool")
	}
	if opts.Table == "" {
		opts.Table = defaultTable
	}
	switch {
	case len(opts.Table) > maxTableLen:
		return nil, fmt.Errorf("postgres: new store: table name is %d bytes, limit %d", len(opts.Table), maxTableLen)
	case len(opts.Schema) > maxIdentLen:
		return nil, fmt.Errorf("postgres: new store: schema name is %d bytes, limit %d", len(opts.Schema), maxIdentLen)
	case hasNUL(opts.Table) || hasNUL(opts.Schema):
		return nil, errors.New("postgres: new store: schema and table names must not contain NUL")
	case opts.CleanupBatch < 0:
		return nil, fmt.Errorf("postgres: new store: negative cleanup batch %d", opts.CleanupBatch)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CleanupInterval == 0 {
		opts.CleanupInterval = defaultCleanupInterval
	}
	if opts.CleanupBatch == 0 {
		opts.CleanupBatch = defaultCleanupBatch
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Store{
		pool:      pool,
		now:       opts.Now,
		batch:     opts.CleanupBatch,
		logger:    opts.Logger,
		table:     qualify(opts.Schema, opts.Table),
		tableName: opts.Table,
		schema:    opts.Schema,
		versions:  qualify(opts.Schema, opts.Table+"_schema_migrations"),
		lockSpace: hash32(qualify(opts.Schema, opts.Table)),
	}
	s.sql = newQueries(s.table)
	if opts.CleanupInterval > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		s.stop, s.done, s.hasCleanup = cancel, make(chan struct{}), true
		go s.cleanupLoop(ctx, opts.CleanupInterval)
	}
	return s, nil
}

// Close stops the background cleanup and waits for it to return. It does
// not close the pool, and the Store's methods keep working after it. Close
// is idempotent and always returns nil.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.hasCleanup {
			s.stop()
			<-s.done
		}
	})
	return nil
}

// qualify quotes an identifier, prefixed by its schema when there is one.
func qualify(schema, name string) string {
	if schema == "" {
		return pgx.Identifier{name}.Sanitize()
	}
	return pgx.Identifier{schema, name}.Sanitize()
}

func hasNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

func hash32(s string) int32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return int32(h.Sum32())
}

// columns is the column list every statement that returns sessions uses,
// in the order scanSession reads them.
const columns = `id, user_id, user_data, device_user_agent, device_ip, device_label,
	created_at, updated_at, last_seen_at, expires_at`

// queries are the store's statements, built once for its table. $now in
// the comments is Options.Now; no statement calls the database's now().
type queries struct {
	lockUser, freeForCreate, liveIDs, evict, insert string
	get, touch, updateUser, delete, list, count     string
	deleteUser, cleanup                             string
}

func newQueries(t string) queries {
	return queries{
		// The user's writes (Create, UpdateUser, DeleteUser) take this
		// transaction-scoped lock first, so they happen one after the
		// other: the cap's count cannot go stale and "sign out
		// everywhere" cannot interleave with a Create. Two users whose
		// keys collide merely wait for each other.
		lockUser: `SELECT pg_advisory_xact_lock($1::int4, $2::int4)`,
		// An expired row is gone by contract, so its ID is free again;
		// the user's other expired rows go too while the user is locked.
		freeForCreate: `DELETE FROM ` + t + ` WHERE (id = $1 OR user_id = $2) AND expires_at <= $3`,
		// Soonest expiry first: the order EvictOldest evicts in.
		liveIDs: `SELECT id FROM ` + t + ` WHERE user_id = $1 AND expires_at > $2
			ORDER BY expires_at, created_at, seq`,
		evict: `DELETE FROM ` + t + ` WHERE id = ANY($1) RETURNING id`,
		insert: `INSERT INTO ` + t + ` (` + columns + `)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (id) DO NOTHING`,
		get: `SELECT ` + columns + ` FROM ` + t + ` WHERE id = $1 AND expires_at > $2`,
		touch: `UPDATE ` + t + ` SET last_seen_at = $2, expires_at = $3
			WHERE id = $1 AND expires_at > $4 RETURNING ` + columns,
		updateUser: `UPDATE ` + t + ` SET user_data = $2, updated_at = $3
			WHERE user_id = $1 AND expires_at > $3`,
		delete: `DELETE FROM ` + t + ` WHERE id = $1`,
		list: `SELECT ` + columns + ` FROM ` + t + ` WHERE user_id = $1 AND expires_at > $2
			ORDER BY created_at, seq`,
		count: `SELECT count(*) FROM ` + t + ` WHERE user_id = $1 AND expires_at > $2`,
		// Expired rows go too, but only live ones are counted.
		deleteUser: `WITH d AS (DELETE FROM ` + t + ` WHERE user_id = $1 RETURNING expires_at)
			SELECT count(*) FILTER (WHERE expires_at > $2) FROM d`,
		// SKIP LOCKED: rows another transaction holds (a Touch, another
		// instance's cleanup) are left for the next batch instead of
		// making this one wait. The outer condition repeats the inner
		// one so that a row is only deleted if it is expired when locked.
		cleanup: `DELETE FROM ` + t + ` WHERE id IN (
				SELECT id FROM ` + t + ` WHERE expires_at <= $1
				LIMIT $2 FOR UPDATE SKIP LOCKED)
			AND expires_at <= $1`,
	}
}

// Create implements store.Store. It runs as one transaction under the
// user's lock: free an expired row with the same ID, apply the cap, insert.
// Without a cap that is one round trip; with one, three.
func (s *Store) Create(ctx context.Context, sess *store.Session, opts store.CreateOptions) ([]string, error) {
	const op = "create session"
	now := s.now()
	p, err := store.PrepareCreate(sess, now)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	if opts.OnLimit != store.EvictOldest && opts.OnLimit != store.Refuse {
		return nil, fmt.Errorf("postgres: %s: %w: unknown limit policy %d", op, store.ErrInvalid, opts.OnLimit)
	}
	var evicted []string
	if opts.MaxPerUser > 0 {
		evicted, err = s.createCapped(ctx, p, now, opts)
	} else {
		b := s.userBatch(p.UserID)
		b.Queue(s.sql.freeForCreate, p.ID, p.UserID, now)
		s.queueInsert(b, p)
		err = s.pool.SendBatch(ctx, b).Close()
	}
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	return evicted, nil
}

// createCapped is Create with a cap: the cap needs the user's live
// sessions before it can decide, so it takes an explicit transaction.
func (s *Store) createCapped(ctx context.Context, p *store.Session, now time.Time, opts store.CreateOptions) (evicted []string, err error) {
	var live []string
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{})
	b.Queue(s.sql.lockUser, s.lockSpace, hash32(p.UserID))
	b.Queue(s.sql.freeForCreate, p.ID, p.UserID, now)
	b.Queue(s.sql.liveIDs, p.UserID, now).Query(func(rows pgx.Rows) (err error) {
		live, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	// Rollback after Commit is a no-op; on any other way out it undoes
	// the evictions and frees the connection (with a done ctx by closing
	// it, which rolls back on the server just the same).
	defer func() { _ = tx.Rollback(ctx) }()
	if err := br.Close(); err != nil {
		return nil, err
	}
	if slices.Contains(live, p.ID) {
		return nil, store.ErrExists
	}
	b = &pgx.Batch{}
	if over := len(live) + 1 - opts.MaxPerUser; over > 0 {
		if opts.OnLimit == store.Refuse {
			return nil, fmt.Errorf("%w: limit %d", store.ErrTooManySessions, opts.MaxPerUser)
		}
		b.Queue(s.sql.evict, live[:over]).Query(func(rows pgx.Rows) (err error) {
			evicted, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
	}
	s.queueInsert(b, p)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return evicted, nil
}

// queueInsert queues p's INSERT, which reports ErrExists when the ID is
// taken by a live session.
func (s *Store) queueInsert(b *pgx.Batch, p *store.Session) {
	b.Queue(s.sql.insert, p.ID, p.UserID, nullable(p.User),
		p.Device.UserAgent, p.Device.IP, p.Device.Label,
		p.CreatedAt, p.UpdatedAt, p.LastSeenAt, p.ExpiresAt,
	).Exec(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() == 0 {
			return store.ErrExists
		}
		return nil
	})
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (*store.Session, error) {
	const op = "get session"
	if !store.ValidID(id) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, s.sql.get, id, s.now()))
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	return sess, nil
}

// Touch implements store.Store.
func (s *Store) Touch(ctx context.Context, id string, lastSeen, expiresAt time.Time) (*store.Session, error) {
	const op = "touch session"
	now := s.now()
	if err := store.ValidateTouch(lastSeen, expiresAt, now); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	if !store.ValidID(id) {
		return nil, fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	}
	sess, err := scanSession(s.pool.QueryRow(ctx, s.sql.touch, id,
		lastSeen.Truncate(time.Millisecond), expiresAt.Truncate(time.Millisecond), now))
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	return sess, nil
}

// UpdateUser implements store.Store.
func (s *Store) UpdateUser(ctx context.Context, userID string, user json.RawMessage) (int, error) {
	const op = "update user"
	if err := store.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("postgres: %s: %w", op, err)
	}
	if err := store.ValidateUser(user); err != nil {
		return 0, fmt.Errorf("postgres: %s: %w", op, err)
	}
	now := s.now().Truncate(time.Millisecond)
	var n int
	b := s.userBatch(userID)
	b.Queue(s.sql.updateUser, userID, nullable(user), now).Exec(func(tag pgconn.CommandTag) error {
		n = int(tag.RowsAffected())
		return nil
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return 0, s.fail(ctx, op, err)
	}
	return n, nil
}

// Delete implements store.Store. A malformed ID names no session, so it is
// a no-op like any unknown ID.
func (s *Store) Delete(ctx context.Context, id string) error {
	const op = "delete session"
	if !store.ValidID(id) {
		return nil
	}
	if _, err := s.pool.Exec(ctx, s.sql.delete, id); err != nil {
		return s.fail(ctx, op, err)
	}
	return nil
}

// List implements store.Store.
func (s *Store) List(ctx context.Context, userID string) ([]*store.Session, error) {
	const op = "list sessions"
	if err := store.ValidateUserID(userID); err != nil {
		return nil, fmt.Errorf("postgres: %s: %w", op, err)
	}
	rows, _ := s.pool.Query(ctx, s.sql.list, userID, s.now())
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Session, error) {
		return scanSession(row)
	})
	if err != nil {
		return nil, s.fail(ctx, op, err)
	}
	if list == nil {
		list = []*store.Session{}
	}
	return list, nil
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(ctx context.Context, userID string) (int, error) {
	const op = "delete user sessions"
	if err := store.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("postgres: %s: %w", op, err)
	}
	var n int
	b := s.userBatch(userID)
	b.Queue(s.sql.deleteUser, userID, s.now()).QueryRow(func(row pgx.Row) error { return row.Scan(&n) })
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return 0, s.fail(ctx, op, err)
	}
	return n, nil
}

// Count implements store.Store.
func (s *Store) Count(ctx context.Context, userID string) (int, error) {
	const op = "count sessions"
	if err := store.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("postgres: %s: %w", op, err)
	}
	var n int
	if err := s.pool.QueryRow(ctx, s.sql.count, userID, s.now()).Scan(&n); err != nil {
		return 0, s.fail(ctx, op, err)
	}
	return n, nil
}

// userBatch returns a batch whose first statement takes userID's lock.
// pgx sends a batch in one round trip and PostgreSQL runs it as one
// implicit transaction, so the lock holds until the batch's last statement
// has run, and an error in any statement rolls back all of them.
func (s *Store) userBatch(userID string) *pgx.Batch {
	b := &pgx.Batch{}
	b.Queue(s.sql.lockUser, s.lockSpace, hash32(userID))
	return b
}

// fail turns a failed operation's error into the store's: sentinels pass
// through, a done ctx is reported as such, and anything else means the
// database could not be reached or did not do the job.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("postgres: %s: %w", op, store.ErrNotFound)
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrTooManySessions):
		return fmt.Errorf("postgres: %s: %w", op, err)
	case ctx.Err() != nil:
		return fmt.Errorf("postgres: %s: %w", op, ctx.Err())
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return fmt.Errorf("postgres: %s: %w: %w (has Migrate run?)", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %s: %w: %w", op, store.ErrUnavailable, err)
}

// nullable stores an absent user profile as NULL rather than as an empty
// byte string, so that it reads back as nil like the other backends'.
func nullable(user json.RawMessage) []byte {
	if len(user) == 0 {
		return nil
	}
	return user
}

func scanSession(row pgx.Row) (*store.Session, error) {
	var (
		sess store.Session
		user []byte
	)
	err := row.Scan(&sess.ID, &sess.UserID, &user,
		&sess.Device.UserAgent, &sess.Device.IP, &sess.Device.Label,
		&sess.CreatedAt, &sess.UpdatedAt, &sess.LastSeenAt, &sess.ExpiresAt)
	if err != nil {
		return nil, err
	}
	if len(user) > 0 {
		sess.User = user
	}
	// pgx reads timestamptz in time.Local; UTC keeps what a session looks
	// like independent of the server's time zone.
	for _, t := range []*time.Time{&sess.CreatedAt, &sess.UpdatedAt, &sess.LastSeenAt, &sess.ExpiresAt} {
		*t = t.UTC()
	}
	return &sess, nil
}
