package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/sessiond/sessiond/store"
)

// The migrations, applied in the order of their version, the number that
// starts each file's name. A released file never changes: a schema change
// is a new file with the next version.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrateLockKey is the session-independent advisory lock (the one-bigint
// key space, apart from the per-user locks' two-int4 space) that makes
// concurrent Migrate calls, from any number of instances, run one at a time.
const migrateLockKey int64 = 0x73657373696f6e64 // "sessiond"

type migration struct {
	version int
	name    string
	sql     string
}

var migrationName = regexp.MustCompile(`^(\d+)_([a-z0-9_]+)\.sql$`)

// loadMigrations reads the embedded migrations once and checks that their
// versions run 1, 2, 3... without gaps or repeats.
var loadMigrations = sync.OnceValues(readMigrations)

func readMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		text, err := fs.ReadFile(migrationFiles, "migrations/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: m[2], sql: string(text)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %d_%s: want version %d", m.version, m.name, i+1)
		}
	}
	return ms, nil
}

var placeholder = regexp.MustCompile(`\{\{(table|index:[a-z0-9_]+)\}\}`)

// render puts the store's names into a migration: {{table}} is the
// qualified table, {{index:x}} the index name <table>_x_idx (an index lives
// in its table's schema, so its name is never qualified).
func (s *Store) render(sql string) string {
	return placeholder.ReplaceAllStringFunc(sql, func(p string) string {
		p = strings.Trim(p, "{}")
		if p == "table" {
			return s.table
		}
		return pgx.Identifier{s.tableName + "_" + strings.TrimPrefix(p, "index:") + "_idx"}.Sanitize()
	})
}

// Migrate brings the schema up to date: it creates the version table
// (Options.Table + "_schema_migrations") if missing and applies the
// migrations it has not recorded, all in one transaction, so a failure
// leaves the schema as it was. It is idempotent, and safe when several
// instances start at once: an advisory lock makes them take turns, and the
// later ones find nothing to do. A database migrated by a newer release is
// left alone.
func (s *Store) Migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int8)`, migrateLockKey); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.versions+` (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return err
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+s.versions).Scan(&current); err != nil {
			return err
		}
		for _, m := range ms[min(current, len(ms)):] {
			if _, err := tx.Exec(ctx, s.render(m.sql)); err != nil {
				return fmt.Errorf("migration %d_%s: %w", m.version, m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO `+s.versions+` (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return s.fail(ctx, "migrate", err)
	}
	return nil
}

// Ping reports whether the database answers and holds the schema this
// release needs, for readiness probes: an instance started before Migrate
// has run (by it or by another instance) is not ready. Failures wrap
// store.ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	var current int
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM `+s.versions).Scan(&current); err != nil {
		return s.fail(ctx, "ping", err)
	}
	if current < len(ms) {
		return fmt.Errorf("postgres: ping: %w: schema version %d, this release needs %d (has Migrate run?)",
			store.ErrUnavailable, current, len(ms))
	}
	return nil
}
