// Command sessiond is the session daemon: a versioned JSON HTTP API (/v1)
// over the session manager and a shared session store (memory, Redis or
// PostgreSQL), for apps in any language and for several instances behind a
// load balancer. Run `sessiond --help` for its flags; the API is documented
// in openapi.yaml beside this file.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/manager/jwtverify"
	"github.com/sessiond/sessiond/manager/upstream"
	"github.com/sessiond/sessiond/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling: a second
		// Ctrl-C ends a shutdown that is taking too long.
		<-ctx.Done()
		stop()
	}()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessiond:", err)
		os.Exit(1)
	}
}

// run is sessiond: it parses the configuration, opens the store, serves
// until ctx is cancelled (SIGINT or SIGTERM in main), then shuts down
// gracefully: /readyz turns 503, in-flight requests finish, the listeners
// close, and only then are the store's connections closed.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)

	var cleanups []func() error
	defer func() {
		// Reverse order of opening: the manager's dependencies last.
		for i := len(cleanups) - 1; i >= 0; i-- {
			if err := cleanups[i](); err != nil {
				log.Warn("close", "err", err.Error())
			}
		}
	}()

	keys, err := apiKeys(cfg)
	if err != nil {
		return err
	}
	tlsConf, err := serverTLS(cfg)
	if err != nil {
		return err
	}
	met := newMetrics()
	be, err := openBackend(ctx, cfg, log)
	if err != nil {
		return err
	}
	cleanups = append(cleanups, be.close)
	mcfg, closeJWT, err := managerConfig(ctx, cfg, log, be.refresh)
	if err != nil {
		return err
	}
	if closeJWT != nil {
		cleanups = append(cleanups, closeJWT)
	}
	mcfg.Hooks = met.hooks()
	mgr, err := manager.New(be.store, mcfg)
	if err != nil {
		return err
	}

	a := &api{
		mgr:            mgr,
		log:            log,
		met:            met,
		auth:           newAuthenticator(keys, cfg.ClientCA != ""),
		limiter:        newFailureLimiter(cfg.FailedTokenRate, cfg.FailedTokenBurst, time.Now),
		ping:           be.ping,
		maxBody:        cfg.MaxBodyBytes,
		requestTimeout: cfg.RequestTimeout,
		metricsOnMain:  cfg.MetricsAddr == "",
	}
	if a.ping == nil {
		a.ping = storePinger(be.store)
	}
	// SIGHUP re-reads --api-key-file. It is caught even without one, so
	// that a stray HUP (a closed terminal, a habit from other daemons) does
	// not kill a serving process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	defer func() { stopWatch(); <-watched }()
	go func() {
		defer close(watched)
		if cfg.APIKeyFile == "" {
			for {
				select {
				case <-watchCtx.Done():
					return
				case <-hup:
					log.Info("SIGHUP: no --api-key-file to reload")
				}
			}
		}
		var tick <-chan time.Time
		if cfg.APIKeyFileReload > 0 {
			t := time.NewTicker(cfg.APIKeyFileReload)
			defer t.Stop()
			tick = t.C
		}
		watchAPIKeys(watchCtx, cfg, a.auth, log, met, hup, tick)
	}()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	servers := []*http.Server{newHTTPServer(cfg, a.handler(), log)}
	listeners := []net.Listener{ln}
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s: %w", cfg.MetricsAddr, err)
		}
		servers = append(servers, newHTTPServer(cfg, a.adminHandler(), log))
		listeners = append(listeners, mln)
	}

	printBanner(stdout, cfg, ln.Addr(), tlsConf != nil, len(keys) > 0)
	log.Info("sessiond started", "addr", ln.Addr().String(), "store", cfg.Store,
		"api_keys", len(keys), "mtls", cfg.ClientCA != "", "metrics_addr", cfg.MetricsAddr)
	if !a.auth.enabled() && !isLoopback(ln.Addr()) {
		log.Warn("no caller authentication and the listener is not on loopback: anyone who reaches it can read and end sessions")
	}

	serveErr := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { serveErr <- srv.Serve(listeners[i]) }()
	}
	var failed error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		failed = fmt.Errorf("serve: %w", err)
	}

	log.Info("shutting down", "delay", cfg.ShutdownDelay.String(), "timeout", cfg.ShutdownTimeout.String())
	a.draining.Store(true)
	if cfg.ShutdownDelay > 0 && failed == nil {
		// Load balancers poll /readyz; give them time to see the 503 and
		// stop sending before the listener closes.
		time.Sleep(cfg.ShutdownDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			log.Error("in-flight requests did not finish in time; closing their connections", "err", err.Error())
			srv.Close()
			failed = errors.Join(failed, fmt.Errorf("shutdown: %w", err))
		}
	}
	// Serve has returned for every server once Shutdown is done; drain the
	// results so no goroutine outlives run.
	for range servers {
		if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) && failed == nil {
			failed = fmt.Errorf("serve: %w", err)
		}
	}
	log.Info("stopped")
	return failed
}

func newLogger(cfg *config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by parseConfig
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func newHTTPServer(cfg *config, h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10, // a JWT and a few cookies fit; the default 1 MiB invites abuse
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// apiKeys gathers --api-keys and --api-key-file.
func apiKeys(cfg *config) ([]string, error) {
	keys := append([]string(nil), cfg.APIKeys...)
	if cfg.APIKeyFile != "" {
		fromFile, err := readLines(cfg.APIKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--api-key-file: %w", err)
		}
		if len(fromFile) == 0 {
			return nil, fmt.Errorf("--api-key-file %s holds no key", cfg.APIKeyFile)
		}
		for _, k := range fromFile {
			if len(k) < minAPIKeyLen {
				return nil, fmt.Errorf("--api-key-file %s: every key must be at least %d characters (key not shown)", cfg.APIKeyFile, minAPIKeyLen)
			}
		}
		keys = append(keys, fromFile...)
	}
	return keys, nil
}

// serverTLS loads --tls-cert/--tls-key and, for mTLS, --client-ca; nil
// means plain HTTP.
func serverTLS(cfg *config) (*tls.Config, error) {
	if cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if cfg.ClientCA != "" {
		pem, err := os.ReadFile(cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--client-ca %s: no PEM certificate found", cfg.ClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// managerConfig turns the flags into a manager.Config, building the JWT
// verifier and upstream client when configured. closeJWT stops the
// verifier's JWKS refresh. coord, when not nil, makes the instances on one
// store exchange each refresh token at the upstream once between them.
func managerConfig(ctx context.Context, cfg *config, log *slog.Logger, coord upstream.Coordinator) (mc manager.Config, closeJWT func() error, err error) {
	mc = manager.Config{
		MaxAge:             cfg.MaxAge,
		UpdateAge:          cfg.UpdateAge,
		AbsoluteMaxAge:     cfg.AbsoluteMaxAge,
		IdleTimeout:        cfg.SessionIdleTimeout,
		MaxSessionsPerUser: cfg.MaxSessionsPerUser,
		Development:        cfg.InsecureCookies,
		Cookie:             manager.CookieConfig{Name: cfg.CookieName, SameSite: sameSite(cfg.CookieSameSite)},
		AccessTokenCookie:  cfg.AccessTokenCookie,
		RefreshTokenCookie: cfg.RefreshTokenCookie,
		Logger:             log,
	}
	if cfg.OnLimit == "refuse" {
		mc.OnLimit = store.Refuse
	}
	if cfg.UpstreamURL == "" {
		return mc, nil, nil
	}
	up, err := upstream.New(upstream.Config{
		BaseURL:      cfg.UpstreamURL,
		UserInfoPath: cfg.UpstreamUserInfoPath,
		RefreshPath:  cfg.UpstreamRefreshPath,
		UserIDField:  cfg.UpstreamUserIDField,
		Timeout:      cfg.UpstreamTimeout,
		Coordinator:  coord,
	})
	if err != nil {
		return mc, nil, err
	}
	jc := jwtverify.Config{
		JWKSURL:     cfg.JWKSURL,
		Algorithms:  cfg.JWTAlgorithms,
		Issuer:      cfg.JWTIssuer,
		Audience:    cfg.JWTAudience,
		Leeway:      cfg.JWTLeeway,
		UserIDClaim: cfg.JWTUserIDClaim,
		Logger:      log,
	}
	for _, s := range cfg.JWTHMACSecrets {
		jc.HMACSecrets = append(jc.HMACSecrets, []byte(s))
	}
	for _, f := range cfg.JWTHMACSecretFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return mc, nil, fmt.Errorf("--jwt-hmac-secret-files: %w", err)
		}
		jc.HMACSecrets = append(jc.HMACSecrets, []byte(strings.TrimRight(string(b), "\r\n")))
	}
	for _, f := range cfg.JWTPublicKeyFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return mc, nil, fmt.Errorf("--jwt-public-key-files: %w", err)
		}
		jc.PublicKeysPEM = append(jc.PublicKeysPEM, b)
	}
	v, err := jwtverify.New(ctx, jc)
	if err != nil {
		return mc, nil, err
	}
	mc.JWT, mc.Upstream = v, up
	return mc, v.Close, nil
}

func sameSite(s string) http.SameSite {
	switch strings.ToLower(s) {
	case "strict":
		return http.SameSiteStrictMode
	case "none":
		return http.SameSiteNoneMode
	}
	return http.SameSiteLaxMode
}

func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// baseURL is how a local curl reaches the listener: a wildcard address
// (":8080", "0.0.0.0:8080") is reached on loopback.
func baseURL(addr net.Addr, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// curlExample is the request the banner suggests: a sign-in on the
// listener, with the headers this configuration needs (never the key).
func curlExample(cfg *config, base string, apiKey bool) string {
	var b strings.Builder
	b.WriteString("curl -sS -X POST " + base + "/v1/sessions -H 'Content-Type: application/json'")
	if apiKey {
		b.WriteString(` -H "Authorization: Bearer $API_KEY"`)
	}
	if cfg.ClientCA != "" {
		b.WriteString(" --cert client.pem --key client-key.pem")
	}
	if cfg.TLSCert != "" {
		b.WriteString(" --cacert ca.pem")
	}
	b.WriteString(` -d '{"userId":"alice","user":{"name":"Alice"}}'`)
	return b.String()
}

func printBanner(w io.Writer, cfg *config, addr net.Addr, tls, apiKey bool) {
	base := baseURL(addr, tls)
	fmt.Fprintf(w, "sessiond listening on %s (store: %s)\n", base, cfg.Store)
	fmt.Fprintf(w, "Create a session (sign-in):\n  %s\n", curlExample(cfg, base, apiKey))
	fmt.Fprintf(w, "API: %s/v1 (openapi.yaml); health: %s/healthz, %s/readyz\n", base, base, base)
}
