package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// envPrefix turns a flag name into its environment variable:
// --redis-url is SESSIOND_REDIS_URL.
const envPrefix = "SESSIOND_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// config is everything sessiond is told at start. Flags live only in this
// package; the libraries get their own Config/Options structs built from it.
type config struct {
	Listen      string
	MetricsAddr string
	LogLevel    string
	LogFormat   string

	Store string // memory, redis or postgres

	RedisURL            string
	RedisSentinelMaster string
	RedisSentinelAddrs  []string
	RedisClusterAddrs   []string
	RedisUsername       string
	RedisPassword       string
	RedisTLS            bool
	RedisTLSCA          string
	RedisSentinelPass   string
	RedisKeyPrefix      string
	RedisEvictionCheck  string // refuse or warn
	RedisNearCacheTTL   time.Duration
	RedisWaitReplicas   int
	RedisWaitTimeout    time.Duration
	RedisAutoPipeline   bool

	PostgresURL     string
	PostgresMigrate bool
	PostgresSchema  string
	PostgresTable   string

	MaxAge             time.Duration
	UpdateAge          time.Duration
	AbsoluteMaxAge     time.Duration
	SessionIdleTimeout time.Duration
	MaxSessionsPerUser int
	OnLimit            string // evict-oldest or refuse
	CookieName         string
	AccessTokenCookie  string
	RefreshTokenCookie string
	CookieSameSite     string
	InsecureCookies    bool

	UpstreamURL          string
	UpstreamUserInfoPath string
	UpstreamRefreshPath  string
	UpstreamUserIDField  string
	UpstreamTimeout      time.Duration

	JWTHMACSecrets     []string
	JWTHMACSecretFiles []string
	JWTPublicKeyFiles  []string
	JWKSURL            string
	JWTIssuer          string
	JWTAudience        string
	JWTAlgorithms      []string
	JWTLeeway          time.Duration
	JWTUserIDClaim     string

	APIKeys          []string
	APIKeyFileReload time.Duration
	APIKeyFile       string
	TLSCert          string
	TLSKey           string
	ClientCA         string
	InsecureNoAuth   bool

	MaxBodyBytes      int64
	RequestTimeout    time.Duration
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownDelay     time.Duration
	ShutdownTimeout   time.Duration

	FailedTokenRate  float64
	FailedTokenBurst int
}

// Defaults, documented in --help.
const (
	defaultListen       = "127.0.0.1:8080"
	defaultMaxBodyBytes = 1 << 20
)

// secretFlags are never echoed back, not even in a parse error.
var secretFlags = map[string]bool{
	"redis-password": true, "redis-url": true, "postgres-url": true,
	"jwt-hmac-secrets": true, "api-keys": true, "redis-sentinel-password": true,
}

// listFlag is a comma-separated list; repeating the flag appends.
type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l.p = append(*l.p, part)
		}
	}
	return nil
}

// flagSection is a titled group of flags for --help, in declaration order.
type flagSection struct {
	title string
	names []string
}

// newFlagSet declares every flag of sessiond on cfg. Each flag's usage
// string is what --help prints next to it, grouped by sections.
func newFlagSet(cfg *config) (*flag.FlagSet, []flagSection) {
	fs := flag.NewFlagSet("sessiond", flag.ContinueOnError)
	var sections []flagSection
	seen := map[string]bool{}
	// section closes a group: every flag declared since the previous call.
	section := func(title string) {
		sec := flagSection{title: title}
		fs.VisitAll(func(f *flag.Flag) {
			if !seen[f.Name] {
				seen[f.Name] = true
				sec.names = append(sec.names, f.Name)
			}
		})
		sections = append(sections, sec)
	}
	str := func(p *string, name, def, usage string) { fs.StringVar(p, name, def, usage) }
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		fs.DurationVar(p, name, def, usage)
	}
	boolean := func(p *bool, name string, usage string) { fs.BoolVar(p, name, false, usage) }
	list := func(p *[]string, name, usage string) { fs.Var(listFlag{p}, name, usage) }

	str(&cfg.Listen, "listen", defaultListen, "address of the API listener (host:port); use :8080 to listen on every interface")
	str(&cfg.MetricsAddr, "metrics-addr", "", "separate plain-HTTP listener for /metrics, /healthz and /readyz (e.g. :9090); empty: /metrics is served without auth on --listen")
	str(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	str(&cfg.LogFormat, "log-format", "json", "log format on stderr: json or text")
	section("Serving")
	str(&cfg.Store, "store", "memory", "session store: memory (one process, lost on exit), redis or postgres")
	str(&cfg.RedisURL, "redis-url", "", "Redis URL for a standalone server, redis://[user:password@]host:port/db or rediss:// for TLS")
	str(&cfg.RedisSentinelMaster, "redis-sentinel-master", "", "Sentinel master name (use with --redis-sentinel-addrs)")
	list(&cfg.RedisSentinelAddrs, "redis-sentinel-addrs", "comma-separated Sentinel addresses host:port")
	list(&cfg.RedisClusterAddrs, "redis-cluster-addrs", "comma-separated Redis Cluster seed addresses host:port")
	str(&cfg.RedisUsername, "redis-username", "", "Redis ACL username (overrides the URL's)")
	str(&cfg.RedisPassword, "redis-password", "", "Redis password (overrides the URL's); prefer the environment variable")
	boolean(&cfg.RedisTLS, "redis-tls", "connect to Redis over TLS (implied by a rediss:// URL)")
	str(&cfg.RedisTLSCA, "redis-tls-ca", "", "PEM CA bundle that signed the Redis servers' certificates; empty: the system roots")
	str(&cfg.RedisSentinelPass, "redis-sentinel-password", "", "password of the Sentinels themselves (requirepass on the Sentinels), if any")
	str(&cfg.RedisKeyPrefix, "redis-key-prefix", "", "prefix of every Redis key, to share a Redis between deployments (default: the store's own)")
	str(&cfg.RedisEvictionCheck, "redis-eviction-check", "refuse", "when Redis's maxmemory-policy is allkeys-* (it could evict a user's index, so sign-out-everywhere would miss sessions): refuse to start, or warn")
	fs.IntVar(&cfg.RedisWaitReplicas, "redis-wait-replicas", 0, "after each revocation (sign-out, revoke), wait until this many replicas have it (Redis WAIT), so a sign-out survives a failover; fewer within --redis-wait-timeout answer 503 (retrying is safe); 0: no wait; on a cluster, the replicas of the user's master count, so at most the fewest replicas any master has")
	dur(&cfg.RedisWaitTimeout, "redis-wait-timeout", 200*time.Millisecond, "longest wait for --redis-wait-replicas")
	boolean(&cfg.RedisAutoPipeline, "redis-auto-pipeline", "batch concurrent session lookups into Redis pipelines (go-redis's auto-pipeliner, marked experimental upstream): less CPU and more lookups per second under load; writes are never batched; a lookup still ends at --request-timeout")
	dur(&cfg.RedisNearCacheTTL, "redis-near-cache-ttl", 0, "serve hot sessions from this process's memory for at most this long (e.g. 5s), invalidated across instances through Redis pub/sub; also the longest a revoked session may still resolve if an invalidation is lost; 0: off")
	str(&cfg.PostgresURL, "postgres-url", "", "PostgreSQL connection URL, postgres://user:password@host:5432/db")
	boolean(&cfg.PostgresMigrate, "postgres-migrate", "create or upgrade the PostgreSQL tables at start (safe with several instances starting at once)")
	str(&cfg.PostgresSchema, "postgres-schema", "", "PostgreSQL schema holding the sessions table (it must exist); empty: the connection's search_path")
	str(&cfg.PostgresTable, "postgres-table", "sessions", "PostgreSQL sessions table name")
	section("Session store")
	dur(&cfg.MaxAge, "max-age", 30*24*time.Hour, "a session lives this long after its last extension")
	dur(&cfg.UpdateAge, "update-age", 24*time.Hour, "extend a session's expiry at most this often (sliding expiry); at most --max-age")
	dur(&cfg.AbsoluteMaxAge, "absolute-max-age", 0, "cap on a session's whole life whatever its activity; 0: no cap")
	dur(&cfg.SessionIdleTimeout, "session-idle-timeout", 0, "end sessions unused for this long; 0: no idle timeout")
	fs.IntVar(&cfg.MaxSessionsPerUser, "max-sessions-per-user", 0, "cap on a user's live sessions (devices); 0: no cap")
	str(&cfg.OnLimit, "on-limit", "evict-oldest", "at the cap: evict-oldest (end the session expiring first) or refuse (the sign-in fails with too_many_sessions)")
	str(&cfg.CookieName, "cookie-name", "session-token", "session cookie name (sent with the __Host- prefix unless --insecure-cookies)")
	str(&cfg.AccessTokenCookie, "access-token-cookie", "access-token", "cookie name of the JWT access token")
	str(&cfg.RefreshTokenCookie, "refresh-token-cookie", "refresh-token", "cookie name of the refresh token")
	str(&cfg.CookieSameSite, "cookie-samesite", "lax", "SameSite of the cookies: lax, strict or none")
	boolean(&cfg.InsecureCookies, "insecure-cookies", "development only: cookies without Secure and without the __Host- prefix, for apps served over plain http")
	section("Sessions and cookies")
	str(&cfg.UpstreamURL, "upstream-url", "", "base URL of the upstream API that owns users and tokens; with JWT keys it enables the JWT and refresh steps")
	str(&cfg.UpstreamUserInfoPath, "upstream-userinfo-path", "/api/v1/users/me", "upstream path returning the user of an access token")
	str(&cfg.UpstreamRefreshPath, "upstream-refresh-path", "/api/v1/auth/refresh", "upstream path exchanging a refresh token for new tokens")
	str(&cfg.UpstreamUserIDField, "upstream-user-id-field", "id", "JSON field of the upstream profile holding the user ID")
	dur(&cfg.UpstreamTimeout, "upstream-timeout", 5*time.Second, "timeout of one upstream call")
	list(&cfg.JWTHMACSecrets, "jwt-hmac-secrets", "comma-separated HMAC secrets (at least 32 bytes each) verifying HS256/384/512 access tokens; several for rotation; prefer the environment variable or --jwt-hmac-secret-files")
	list(&cfg.JWTHMACSecretFiles, "jwt-hmac-secret-files", "comma-separated files, each holding one HMAC secret (a trailing newline is ignored)")
	list(&cfg.JWTPublicKeyFiles, "jwt-public-key-files", "comma-separated PEM files of RSA/ECDSA/Ed25519 public keys or certificates verifying access tokens")
	str(&cfg.JWKSURL, "jwks-url", "", "JWKS URL of the access tokens' issuer (https, or http on loopback); keys are refreshed hourly and on unknown kid")
	str(&cfg.JWTIssuer, "jwt-issuer", "", "required iss claim of access tokens; empty: not checked")
	str(&cfg.JWTAudience, "jwt-audience", "", "required aud claim of access tokens; empty: not checked")
	list(&cfg.JWTAlgorithms, "jwt-algorithms", "comma-separated allowed alg values (e.g. RS256,ES256); empty: every algorithm the configured keys can verify")
	dur(&cfg.JWTLeeway, "jwt-leeway", 10*time.Second, "clock skew allowed on exp and nbf")
	str(&cfg.JWTUserIDClaim, "jwt-user-id-claim", "sub", "claim holding the user ID")
	section("Upstream API and JWT access tokens (steps 2 and 3 of resolve)")
	list(&cfg.APIKeys, "api-keys", "comma-separated API keys callers must send (Authorization: Bearer <key> or X-API-Key); several at once for rotation; at least 16 characters each; prefer the environment variable or --api-key-file")
	str(&cfg.APIKeyFile, "api-key-file", "", "file of API keys, one per line (# comments and blank lines ignored); added to --api-keys; re-read on SIGHUP and every --api-key-file-reload, a bad file keeping the current keys; replace it atomically (write, then rename)")
	dur(&cfg.APIKeyFileReload, "api-key-file-reload", 30*time.Second, "how often --api-key-file is re-read for changed keys (a mounted Kubernetes Secret changes in place); 0: only on SIGHUP")
	str(&cfg.TLSCert, "tls-cert", "", "PEM certificate (chain) file: serve HTTPS (with --tls-key)")
	str(&cfg.TLSKey, "tls-key", "", "PEM private key file of --tls-cert")
	str(&cfg.ClientCA, "client-ca", "", "PEM CA bundle: require and verify client certificates (mTLS); needs --tls-cert")
	boolean(&cfg.InsecureNoAuth, "insecure-no-auth", "allow a redis or postgres store without caller authentication (no API key, no mTLS); anyone who reaches the port can read and end sessions")
	section("Caller authentication")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", defaultMaxBodyBytes, "largest request body accepted; larger gets 413 too_large")
	dur(&cfg.RequestTimeout, "request-timeout", 10*time.Second, "deadline of one API request's store and upstream calls")
	dur(&cfg.ReadHeaderTimeout, "read-header-timeout", 5*time.Second, "time to read a request's headers (cuts off slow clients)")
	dur(&cfg.ReadTimeout, "read-timeout", 15*time.Second, "time to read a whole request")
	dur(&cfg.WriteTimeout, "write-timeout", 30*time.Second, "time from the end of the request headers to the end of the response")
	dur(&cfg.IdleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive connection stays open")
	dur(&cfg.ShutdownDelay, "shutdown-delay", 0, "on SIGTERM, answer /readyz 503 for this long before closing the listener, so load balancers stop sending first")
	dur(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may take to finish at shutdown")
	fs.Float64Var(&cfg.FailedTokenRate, "failed-token-rate", 50, "failed token checks allowed per second per caller (API key, client certificate or IP), after the burst; 0: no limit")
	fs.IntVar(&cfg.FailedTokenBurst, "failed-token-burst", 500, "failed token checks a caller may make in a burst before 429 rate_limited")
	section("Limits and timeouts")
	return fs, sections
}

// usage writes --help: every flag with its environment variable and
// default.
func usage(w io.Writer, fs *flag.FlagSet, sections []flagSection) {
	fmt.Fprintf(w, `sessiond: session daemon, a JSON HTTP API over a shared session store.

Usage: sessiond [flags]

Every flag can also be set by the environment variable shown; a flag on the
command line wins over the environment. Durations use Go syntax (90s, 15m, 720h).
Secrets (API keys, passwords, HMAC secrets) are better passed by environment
or file than on the command line, which other users of the machine can see.
`)
	for _, sec := range sections {
		fmt.Fprintf(w, "\n%s:\n", sec.title)
		for _, n := range sec.names {
			f := fs.Lookup(n)
			name, _ := flag.UnquoteUsage(f)
			line := "  --" + f.Name
			if name != "" {
				line += " " + name
			}
			fmt.Fprintf(w, "%s\n      %s\n      env %s", line, f.Usage, envName(f.Name))
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
				fmt.Fprintf(w, ", default %s", f.DefValue)
			}
			fmt.Fprintln(w)
		}
	}
}

// errHelp is returned by parseConfig when --help was asked for; run then
// exits successfully.
var errHelp = errors.New("help requested")

// parseConfig reads flags from args and SESSIOND_* variables from getenv
// (flags win), then validates the result. --help writes usage to stdout.
func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (*config, error) {
	cfg := &config{}
	fs, sections := newFlagSet(cfg)
	fs.SetOutput(io.Discard) // errors are returned, usage is printed on --help only
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout, fs, sections)
			return nil, errHelp
		}
		return nil, fmt.Errorf("%w (see sessiond --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see sessiond --help)", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		v := getenv(envName(f.Name))
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			shown := strconv.Quote(v)
			if secretFlags[f.Name] {
				shown = "(secret not shown)"
			}
			errs = append(errs, fmt.Errorf("%s=%s: %v", envName(f.Name), shown, err))
		}
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// validate checks what can be checked without touching the network or the
// file system, so a typo fails at once with a message naming the flag.
func (c *config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("--listen %q: want host:port", c.Listen)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			bad("--metrics-addr %q: want host:port", c.MetricsAddr)
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		bad("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("--log-format %q: want json or text", c.LogFormat)
	}

	redisModes := 0
	for _, set := range []bool{c.RedisURL != "", c.RedisSentinelMaster != "" || len(c.RedisSentinelAddrs) > 0, len(c.RedisClusterAddrs) > 0} {
		if set {
			redisModes++
		}
	}
	if c.Store != "redis" && c.RedisNearCacheTTL != 0 {
		bad("--redis-near-cache-ttl needs --store redis")
	}
	switch c.Store {
	case "memory":
	case "redis":
		if redisModes != 1 {
			bad("--store redis needs exactly one of --redis-url, --redis-sentinel-master with --redis-sentinel-addrs, or --redis-cluster-addrs")
		}
		if (c.RedisSentinelMaster == "") != (len(c.RedisSentinelAddrs) == 0) {
			bad("--redis-sentinel-master and --redis-sentinel-addrs go together")
		}
		if c.RedisURL != "" {
			if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
				bad("--redis-url: want redis://, rediss:// or unix:// (value not shown: it may hold a password)")
			}
		}
		if c.RedisNearCacheTTL < 0 {
			bad("--redis-near-cache-ttl must not be negative")
		}
		if c.RedisEvictionCheck != "refuse" && c.RedisEvictionCheck != "warn" {
			bad("--redis-eviction-check %q: want refuse or warn", c.RedisEvictionCheck)
		}
		if c.RedisWaitReplicas < 0 || c.RedisWaitTimeout <= 0 {
			bad("--redis-wait-replicas must not be negative and --redis-wait-timeout must be positive")
		}
	case "postgres":
		if c.PostgresURL == "" {
			bad("--store postgres needs --postgres-url")
		}
	default:
		bad("--store %q: want memory, redis or postgres", c.Store)
	}
	if c.Store != "redis" && redisModes > 0 {
		bad("--redis-* connection flags given but --store is %q; add --store redis", c.Store)
	}
	if c.Store != "postgres" && c.PostgresURL != "" {
		bad("--postgres-url given but --store is %q; add --store postgres", c.Store)
	}

	if c.OnLimit != "evict-oldest" && c.OnLimit != "refuse" {
		bad("--on-limit %q: want evict-oldest or refuse", c.OnLimit)
	}
	if !slices.Contains([]string{"lax", "strict", "none"}, strings.ToLower(c.CookieSameSite)) {
		bad("--cookie-samesite %q: want lax, strict or none", c.CookieSameSite)
	}
	if c.MaxSessionsPerUser < 0 {
		bad("--max-sessions-per-user must not be negative")
	}

	jwtKeys := len(c.JWTHMACSecrets) > 0 || len(c.JWTHMACSecretFiles) > 0 || len(c.JWTPublicKeyFiles) > 0 || c.JWKSURL != ""
	if jwtKeys && c.UpstreamURL == "" {
		bad("JWT keys are set but --upstream-url is not: the JWT and refresh steps need the upstream to fetch users")
	}
	if c.UpstreamURL != "" && !jwtKeys {
		bad("--upstream-url is set but no JWT key (--jwt-hmac-secrets, --jwt-hmac-secret-files, --jwt-public-key-files or --jwks-url): access tokens could not be verified")
	}
	if c.UpstreamURL != "" {
		if u, err := url.Parse(c.UpstreamURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("--upstream-url %q: want http(s)://host[:port]", c.UpstreamURL)
		}
	}

	for _, k := range c.APIKeys {
		if len(k) < minAPIKeyLen {
			bad("--api-keys: every key must be at least %d characters (key not shown)", minAPIKeyLen)
			break
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		bad("--tls-cert and --tls-key go together")
	}
	if c.ClientCA != "" && c.TLSCert == "" {
		bad("--client-ca needs --tls-cert and --tls-key: client certificates are checked during the TLS handshake")
	}
	callerAuth := len(c.APIKeys) > 0 || c.APIKeyFile != "" || c.ClientCA != ""
	if c.Store != "memory" && !callerAuth && !c.InsecureNoAuth {
		bad("--store %s without caller authentication: set --api-keys, --api-key-file or --client-ca (or --insecure-no-auth to accept anyone who reaches the port)", c.Store)
	}

	if c.MaxBodyBytes < 1024 {
		bad("--max-body-bytes must be at least 1024")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"request-timeout", c.RequestTimeout}, {"read-header-timeout", c.ReadHeaderTimeout},
		{"read-timeout", c.ReadTimeout}, {"write-timeout", c.WriteTimeout},
		{"idle-timeout", c.IdleTimeout}, {"shutdown-timeout", c.ShutdownTimeout},
		{"upstream-timeout", c.UpstreamTimeout},
	} {
		if d.v <= 0 {
			bad("--%s must be positive", d.name)
		}
	}
	if c.ShutdownDelay < 0 {
		bad("--shutdown-delay must not be negative")
	}
	if c.APIKeyFileReload < 0 {
		bad("--api-key-file-reload must not be negative")
	}
	if c.FailedTokenRate < 0 || c.FailedTokenBurst < 0 {
		bad("--failed-token-rate and --failed-token-burst must not be negative")
	}
	if c.FailedTokenRate > 0 && c.FailedTokenBurst < 1 {
		bad("--failed-token-burst must be at least 1 when --failed-token-rate is set")
	}
	return errors.Join(errs...)
}

// readLines reads a file of one entry per line, skipping blank lines and
// # comments. Used for --api-key-file.
func readLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out, nil
}
