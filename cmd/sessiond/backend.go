package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"

	"github.com/sessiond/sessiond/manager/upstream"
	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/memory"
	"github.com/sessiond/sessiond/store/postgres"
	"github.com/sessiond/sessiond/store/redis"
)

// startupCheckTimeout bounds the store checks at start (Redis config,
// PostgreSQL migration), so a wrong address fails fast instead of hanging.
const startupCheckTimeout = 15 * time.Second

// backend is an opened session store with what sessiond needs around it.
type backend struct {
	store store.Store
	// ping tells /readyz whether the store's server answers; nil for the
	// memory store, which always does.
	ping func(ctx context.Context) error
	// closers run in order at shutdown, after the last request: the
	// store's background work first, then its connections.
	closers []func() error
	// refresh shares token refreshes among the instances on this store
	// (Redis only); nil: each instance refreshes on its own.
	refresh upstream.Coordinator
}

func (b *backend) close() error {
	var errs []error
	for _, c := range b.closers {
		errs = append(errs, c())
	}
	return errors.Join(errs...)
}

// openBackend opens the store cfg names.
func openBackend(ctx context.Context, cfg *config, log *slog.Logger) (*backend, error) {
	switch cfg.Store {
	case "memory":
		st := memory.New(memory.Options{})
		return &backend{store: st, closers: []func() error{st.Close}}, nil
	case "redis":
		return openRedis(ctx, cfg, log)
	case "postgres":
		return openPostgres(ctx, cfg, log)
	}
	return nil, fmt.Errorf("unknown store %q", cfg.Store)
}

// clusterReloadInterval is how stale the Redis Cluster slot map may get
// (see redisClient).
const clusterReloadInterval = 2 * time.Second

// redisClient builds the go-redis client for a standalone server (URL),
// Sentinel or Cluster; validate has checked that exactly one is set.
//
// Every mode sets ContextTimeoutEnabled: a request's deadline
// (--request-timeout) then bounds each Redis read and write too. Without
// it, a slow or stalled Redis holds a request for go-redis's own timeouts
// (3 s per read, times its retries), far past the deadline the caller was
// promised (fault scenario 4, TestFaultRedisLatencyStallReset).
func redisClient(cfg *config) (goredis.UniversalClient, error) {
	var tlsConf *tls.Config
	var roots *x509.CertPool
	if cfg.RedisTLSCA != "" {
		pem, err := os.ReadFile(cfg.RedisTLSCA)
		if err != nil {
			return nil, fmt.Errorf("--redis-tls-ca: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--redis-tls-ca %s: no PEM certificate found", cfg.RedisTLSCA)
		}
	}
	if cfg.RedisTLS || roots != nil {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots}
	}
	switch {
	case cfg.RedisURL != "":
		opts, err := goredis.ParseURL(cfg.RedisURL)
		if err != nil {
			// ParseURL's errors may quote the URL, password included.
			return nil, errors.New("--redis-url: cannot parse the URL (not shown: it may hold a password)")
		}
		if cfg.RedisUsername != "" {
			opts.Username = cfg.RedisUsername
		}
		if cfg.RedisPassword != "" {
			opts.Password = cfg.RedisPassword
		}
		switch {
		case opts.TLSConfig != nil && roots != nil: // rediss:// with a private CA
			opts.TLSConfig.RootCAs = roots
		case opts.TLSConfig == nil && tlsConf != nil:
			if host, _, err := net.SplitHostPort(opts.Addr); err == nil {
				tlsConf.ServerName = host
			}
			opts.TLSConfig = tlsConf
		}
		opts.ContextTimeoutEnabled = true
		return goredis.NewClient(opts), nil
	case cfg.RedisSentinelMaster != "":
		return goredis.NewFailoverClient(&goredis.FailoverOptions{
			MasterName:       cfg.RedisSentinelMaster,
			SentinelAddrs:    cfg.RedisSentinelAddrs,
			SentinelPassword: cfg.RedisSentinelPass,
			Username:         cfg.RedisUsername,
			Password:         cfg.RedisPassword,
			TLSConfig:        tlsConf,
			// See ContextTimeoutEnabled below.
			ContextTimeoutEnabled: true,
		}), nil
	default:
		return goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs:     cfg.RedisClusterAddrs,
			Username:  cfg.RedisUsername,
			Password:  cfg.RedisPassword,
			TLSConfig: tlsConf,
			// See ContextTimeoutEnabled below.
			ContextTimeoutEnabled: true,
			// A dead master never answers MOVED, and go-redis reloads
			// the slot map on connection errors only every
			// ClusterStateReloadInterval (default 60 s): after the
			// cluster promotes the replica, its shard's users would
			// fail for up to a minute (fault scenario 3,
			// TestFaultClusterFailoverWithReplica). A reload is one
			// CLUSTER SLOTS, made at most this often and only while
			// requests come in.
			ClusterStateReloadInterval: clusterReloadInterval,
		}), nil
	}
}

// redisLog sends go-redis's own messages (failed dials, pool trouble) to
// sessiond's structured log instead of a bare stderr line. They name
// addresses, never keys' values or passwords.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

func openRedis(ctx context.Context, cfg *config, log *slog.Logger) (*backend, error) {
	// go-redis's logger is process-wide (and swapped atomically); sessiond
	// has one store per process.
	goredis.SetLogger(redisLog{log})
	rc, err := redisClient(cfg)
	if err != nil {
		return nil, err
	}
	st, err := redis.New(rc, redis.Options{
		KeyPrefix:        cfg.RedisKeyPrefix,
		WaitReplicas:     cfg.RedisWaitReplicas,
		WaitTimeout:      cfg.RedisWaitTimeout,
		AutoPipelineGets: cfg.RedisAutoPipeline,
	})
	if err != nil {
		rc.Close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, startupCheckTimeout)
	defer cancel()
	switch err := st.CheckConfig(ctx); {
	case err == nil:
	case errors.Is(err, redis.ErrEvictionPolicy):
		if cfg.RedisEvictionCheck == "refuse" {
			rc.Close()
			return nil, fmt.Errorf("%w; set maxmemory-policy noeviction (or volatile-*), or --redis-eviction-check warn", err)
		}
		log.Warn("Redis may evict session keys: set maxmemory-policy noeviction", "err", err.Error())
	case errors.Is(err, store.ErrUnavailable):
		// Start anyway: /readyz says 503 until Redis answers, so an
		// orchestrator can start sessiond and Redis in any order.
		log.Warn("Redis does not answer at start; not ready until it does", "err", err.Error())
	default:
		rc.Close()
		return nil, fmt.Errorf("check Redis config: %w", err)
	}
	coord, err := redis.NewCoordinator(rc, redis.Options{KeyPrefix: cfg.RedisKeyPrefix})
	if err != nil {
		rc.Close()
		return nil, err
	}
	be := &backend{
		store:   st,
		ping:    func(ctx context.Context) error { return rc.Ping(ctx).Err() },
		closers: []func() error{rc.Close},
		refresh: coord,
	}
	if err := withNearCache(be, rc, cfg, log); err != nil {
		rc.Close()
		return nil, err
	}
	return be, nil
}

func openPostgres(ctx context.Context, cfg *config, log *slog.Logger) (*backend, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.PostgresURL)
	if err != nil {
		// The error may quote the URL, password included.
		return nil, errors.New("--postgres-url: cannot parse the connection URL (not shown: it may hold a password)")
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	st, err := postgres.New(pool, postgres.Options{Schema: cfg.PostgresSchema, Table: cfg.PostgresTable, Logger: log})
	if err != nil {
		pool.Close()
		return nil, err
	}
	b := &backend{
		store: st,
		// The store's Ping also fails until the schema is at this
		// release's version, so /readyz stays 503 until Migrate has run.
		ping: st.Ping,
		closers: []func() error{st.Close, func() error {
			pool.Close()
			return nil
		}},
	}
	if cfg.PostgresMigrate {
		mctx, cancel := context.WithTimeout(ctx, startupCheckTimeout)
		defer cancel()
		if err := st.Migrate(mctx); err != nil {
			b.close()
			return nil, err // already "postgres: migrate: ..."
		}
	}
	return b, nil
}

// storePinger finds a Ping method on the store itself, for backends that
// offer one (see pinger).
func storePinger(st store.Store) func(ctx context.Context) error {
	if p, ok := st.(pinger); ok {
		return p.Ping
	}
	return nil
}
