package postgres

import (
	"context"
	"time"
)

// Cleanup deletes expired rows, at most Options.CleanupBatch per statement
// so that no statement holds many row locks for long, until a statement
// deletes fewer than a batch. It returns how many rows it deleted. Rows that
// expire while it runs are left for the next run, which bounds its work.
//
// Expired rows are invisible to every read whether or not Cleanup has run;
// it only reclaims their space. Instances may run it at the same time: each
// skips the rows another has locked.
func (s *Store) Cleanup(ctx context.Context) (deleted int, err error) {
	now := s.now()
	for {
		tag, err := s.pool.Exec(ctx, s.sql.cleanup, now, s.batch)
		if err != nil {
			return deleted, s.fail(ctx, "cleanup", err)
		}
		n := int(tag.RowsAffected())
		deleted += n
		if s.onCleanup != nil {
			s.onCleanup(n)
		}
		if n < s.batch {
			return deleted, nil
		}
	}
}

// cleanupLoop runs Cleanup every interval until ctx is cancelled by Close.
func (s *Store) cleanupLoop(ctx context.Context, interval time.Duration) {
	defer close(s.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n, err := s.Cleanup(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.logger.Warn("postgres session cleanup failed", "table", s.table, "deleted", n, "err", err)
		default:
			s.logger.Debug("postgres session cleanup", "table", s.table, "deleted", n)
		}
	}
}
