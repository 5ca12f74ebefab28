package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/manager"
	"github.com/sessiond/sessiond/manager/upstream"
	"github.com/sessiond/sessiond/store"
)

// pinger is the optional ability of a store (or of its client) to say
// whether its backend answers; /readyz uses it. Found by type assertion, as
// database/sql finds driver.Pinger.
type pinger interface {
	Ping(ctx context.Context) error
}

// readyTimeout bounds one /readyz store ping (or --request-timeout if
// shorter), so a hung backend makes the probe fail rather than hang.
const readyTimeout = 2 * time.Second

// api is sessiond's HTTP face: the /v1 JSON API over the manager, plus
// health, readiness and metrics.
type api struct {
	mgr     *manager.Manager
	log     *slog.Logger
	met     *metrics
	auth    *authenticator
	limiter *failureLimiter
	// ping checks the store's backend for /readyz; nil means always ready
	// (the memory store).
	ping           func(ctx context.Context) error
	maxBody        int64
	requestTimeout time.Duration
	// metricsOnMain serves /metrics on the API listener (no --metrics-addr).
	metricsOnMain bool

	// draining is set at shutdown: /readyz answers 503 so load balancers
	// stop sending new requests while in-flight ones finish.
	draining atomic.Bool
}

// handlerFunc is an API handler: it writes a success response or returns
// an error, which the wrapper turns into the JSON error body.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *call) error

// call is what the wrapper knows about one request.
type call struct {
	caller string // API key fingerprint, client certificate CN or IP: never the key
	op     string // route name, for metric labels
	// errCode is the error code answered, for the access log.
	errCode string
}

// route is one entry of the router. The OpenAPI test walks the same table
// (and the mux built from it), so what is served and what is documented
// cannot drift apart.
type route struct {
	method string
	path   string // http.ServeMux pattern path
	name   string // operation name: metric label and OpenAPI operationId
	auth   bool   // caller authentication required
	h      handlerFunc
}

func (a *api) routes() []route {
	rs := []route{
		{"POST", "/v1/sessions", "createSession", true, a.create},
		{"POST", "/v1/sessions/resolve", "resolveSession", true, a.resolve},
		{"POST", "/v1/sessions/lookup", "lookupSession", true, a.lookup},
		{"POST", "/v1/sessions/touch", "touchSession", true, a.touch},
		{"POST", "/v1/sessions/signout", "signOut", true, a.signOut},
		{"PUT", "/v1/users/{userId}/profile", "updateUser", true, a.updateUser},
		{"GET", "/v1/users/{userId}/sessions", "listUserSessions", true, a.listSessions},
		{"DELETE", "/v1/users/{userId}/sessions", "revokeUserSessions", true, a.revokeAll},
		{"DELETE", "/v1/users/{userId}/sessions/{sessionId}", "revokeSession", true, a.revokeOne},
		// Health endpoints carry no session data and must answer load
		// balancers and orchestrators that hold no API key.
		{"GET", "/healthz", "healthz", false, a.healthz},
		{"GET", "/readyz", "readyz", false, a.readyz},
	}
	if a.metricsOnMain {
		rs = append(rs, route{"GET", "/metrics", "metrics", false, a.serveMetrics})
	}
	return rs
}

// handler returns the API's router.
func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range a.routes() {
		mux.Handle(rt.method+" "+rt.path, a.wrap(rt))
	}
	// Everything else is a JSON 404, so callers always get the error shape.
	mux.Handle("/", a.wrap(route{path: "unmatched", name: "unmatched", h: a.notFound}))
	return mux
}

// adminHandler serves /metrics, /healthz and /readyz on --metrics-addr.
func (a *api) adminHandler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range []route{
		{"GET", "/metrics", "metrics", false, a.serveMetrics},
		{"GET", "/healthz", "healthz", false, a.healthz},
		{"GET", "/readyz", "readyz", false, a.readyz},
	} {
		mux.Handle(rt.method+" "+rt.path, a.wrap(rt))
	}
	mux.Handle("/", a.wrap(route{path: "unmatched", name: "unmatched", h: a.notFound}))
	return mux
}

// statusWriter remembers the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap runs one route: request ID, panic recovery, caller authentication,
// body limit, deadline, then the handler; errors become JSON; every request
// is counted, timed and logged (route pattern, status, caller; never a
// token, and not the URL, which holds user IDs).
func (a *api) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		a.met.inflight.Inc()
		defer a.met.inflight.Dec()
		// One allocation for both: this runs on every request.
		st := &struct {
			sw statusWriter
			c  call
		}{sw: statusWriter{ResponseWriter: w}, c: call{op: rt.name}}
		sw, c := &st.sw, &st.c
		reqID := requestID(r)
		sw.Header().Set("X-Request-Id", reqID)

		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				a.log.Error("panic in handler", "route", rt.path, "request_id", reqID, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					a.writeError(sw, c, &apiError{http.StatusInternalServerError, client.CodeInternal, "internal error"})
				}
			}
			if c.caller == "" { // a panic before the caller was named
				c.caller = "ip:" + remoteIP(r)
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			took := time.Since(start) // one reading: the metric and the log agree
			code := strconv.Itoa(status)
			method := metricMethod(r.Method)
			a.met.requests.WithLabelValues(rt.path, method, code).Inc()
			a.met.duration.WithLabelValues(rt.path, method).Observe(took.Seconds())
			level := slog.LevelInfo
			if rt.name == "healthz" || rt.name == "readyz" || rt.name == "metrics" {
				level = slog.LevelDebug // probes every few seconds would drown the log
			}
			if status >= 500 {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("method", method), slog.String("route", rt.path),
				slog.Int("status", status), slog.Float64("duration_ms", float64(took.Microseconds())/1000),
				slog.String("caller", c.caller), slog.String("request_id", reqID),
			}
			if c.errCode != "" {
				attrs = append(attrs, slog.String("error_code", c.errCode))
			}
			a.log.LogAttrs(r.Context(), level, "request", attrs...)
		}()

		if rt.auth && a.auth.enabled() {
			// Wrong keys are not rate limited by IP: app servers often
			// share an egress IP, and one of them holding a retired key
			// must not lock the others out. Keys of at least 16
			// characters are what makes guessing them hopeless.
			caller, reason, ok := a.auth.authenticate(r)
			if !ok {
				c.caller = "ip:" + remoteIP(r)
				a.met.authFailures.WithLabelValues(reason).Inc()
				sw.Header().Set("WWW-Authenticate", `Bearer realm="sessiond"`)
				a.writeError(sw, c, &apiError{http.StatusUnauthorized, client.CodeUnauthorized, "missing or invalid API key (send Authorization: Bearer <key> or X-API-Key)"})
				return
			}
			c.caller = caller
		}
		if c.caller == "" {
			c.caller = "ip:" + remoteIP(r)
		}
		if r.ContentLength > a.maxBody {
			// Refuse before reading: the client learns at once, and the
			// server closes the connection instead of draining the body.
			a.writeError(sw, c, tooLarge(a.maxBody))
			return
		}
		r.Body = http.MaxBytesReader(sw, r.Body, a.maxBody)
		if rt.auth {
			// Responses of the API may carry tokens and session data.
			sw.Header()["Cache-Control"] = headerNoStore
			ctx, cancel := context.WithTimeout(r.Context(), a.requestTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if err := rt.h(sw, r, c); err != nil {
			a.writeError(sw, c, err)
		}
	})
}

// metricMethod bounds the method label: a client may send any token as a
// method, and each would otherwise become a new series.
func metricMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// requestID returns the caller's X-Request-Id when it is a sane value, so
// a request can be followed across services, or a fresh random one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 {
		ok := true
		for i := 0; i < len(id); i++ {
			if c := id[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
				ok = false
				break
			}
		}
		if ok {
			return id
		}
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// apiError is an error with its HTTP answer decided.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func invalidRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, client.CodeInvalidRequest, fmt.Sprintf(format, args...)}
}

func tooLarge(limit int64) error {
	return &apiError{http.StatusRequestEntityTooLarge, client.CodeTooLarge, fmt.Sprintf("request body over the limit of %d bytes", limit)}
}

var (
	errInvalidToken = &apiError{http.StatusUnauthorized, client.CodeInvalidToken, "the token identifies no live session"}
	errNotFound     = &apiError{http.StatusNotFound, client.CodeNotFound, "no such session for this user"}
)

// classify maps an error to its HTTP status, stable code and message. Input
// errors keep their message (it names the bad field, never a token); the
// others get a fixed one, and their detail goes to the log only.
func classify(err error) *apiError {
	var ae *apiError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &mbe):
		return tooLarge(mbe.Limit).(*apiError)
	case errors.Is(err, store.ErrTooLarge):
		return &apiError{http.StatusRequestEntityTooLarge, client.CodeTooLarge, err.Error()}
	case errors.Is(err, store.ErrTooManySessions):
		return &apiError{http.StatusTooManyRequests, client.CodeTooManySessions, "the user is at the session limit and the policy refuses new sessions"}
	case errors.Is(err, store.ErrInvalid):
		return &apiError{http.StatusBadRequest, client.CodeInvalidRequest, err.Error()}
	case errors.Is(err, manager.ErrNoSession):
		return errInvalidToken
	case errors.Is(err, upstream.ErrUnavailable):
		return &apiError{http.StatusServiceUnavailable, client.CodeUpstreamUnavailable, "the upstream API is unavailable; retry later"}
	case storeFull(err):
		return errStoreFull
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, manager.ErrUnavailable),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// A deadline here is --request-timeout running out on the store.
		return &apiError{http.StatusServiceUnavailable, client.CodeStoreUnavailable, "the session store is unavailable; the session may well exist, retry later"}
	default:
		return &apiError{http.StatusInternalServerError, client.CodeInternal, "internal error"}
	}
}

// writeError answers err as JSON and counts backend failures.
func (a *api) writeError(w http.ResponseWriter, c *call, err error) {
	ae := classify(err)
	c.errCode = ae.code
	if errors.Is(err, context.Canceled) {
		// The caller hung up; nobody reads this answer, and the store
		// did nothing wrong.
		c.errCode = "canceled"
		writeJSON(w, ae.status, client.ErrorBody{Error: client.ErrorDetail{Code: ae.code, Message: ae.message}})
		return
	}
	switch ae.code {
	case client.CodeStoreUnavailable:
		a.met.storeErrors.WithLabelValues(c.op).Inc()
	case client.CodeUpstreamUnavailable:
		a.met.upstreamErrs.WithLabelValues(c.op).Inc()
	}
	if ae.status >= 500 && !errors.As(err, new(*apiError)) {
		// Store, upstream and manager errors never contain tokens (their
		// contracts say so), so the cause is safe to log.
		a.log.Error("request failed", "op", c.op, "caller", c.caller, "code", ae.code, "err", err.Error())
	}
	writeJSON(w, ae.status, client.ErrorBody{Error: client.ErrorDetail{Code: ae.code, Message: ae.message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client may be gone; nothing left to tell it
}

// decode reads the JSON body into v. Unknown fields are refused, so a
// misspelt field ("userID") fails loudly instead of being ignored. An empty
// body is allowed only when optional.
func decode(r *http.Request, v any, optional bool) error {
	return decodeFrom(r.Body, v, optional)
}

// decodeFrom is decode on any reader of a request body.
func decodeFrom(body io.Reader, v any, optional bool) error {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return err
		case errors.Is(err, io.EOF):
			if optional {
				return nil
			}
			return invalidRequest("request body: a JSON object is required")
		default:
			return invalidRequest("request body: %v", err)
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return invalidRequest("request body: unexpected data after the JSON object")
	}
	return nil
}

// noUser treats an absent or null profile alike.
func noUser(u json.RawMessage) json.RawMessage {
	if string(u) == "null" {
		return nil
	}
	return u
}

// rateLimited refuses the request when its caller has used up its failed
// token checks.
func (a *api) rateLimited(w http.ResponseWriter, c *call) error {
	blocked, wait := a.limiter.blocked(c.caller)
	if !blocked {
		return nil
	}
	a.met.rateLimited.Inc()
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second))))
	return &apiError{http.StatusTooManyRequests, client.CodeRateLimited, "too many failed token checks from this caller; retry after the Retry-After delay"}
}

// tokenFailed answers an invalid token and counts it against the caller.
func (a *api) tokenFailed(c *call) error {
	a.limiter.fail(c.caller)
	return errInvalidToken
}

// sessionToken takes the session token from the body (already decoded into
// body) or, failing that, the X-Session-Token header.
func sessionToken(r *http.Request, body string) string {
	if body != "" {
		return body
	}
	return r.Header.Get(client.HeaderSessionToken)
}

// POST /v1/sessions
func (a *api) create(w http.ResponseWriter, r *http.Request, c *call) error {
	var req client.CreateRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if err := store.ValidateUserID(req.UserID); err != nil {
		return err
	}
	token, s, err := a.mgr.CreateSession(r.Context(), req.UserID, noUser(req.User), req.Device)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, client.CreateResponse{
		Token:   token,
		Session: s,
		Cookies: client.CookiesFromHTTP([]*http.Cookie{a.mgr.SessionCookie(token, s.ExpiresAt)}),
	})
	return nil
}

// POST /v1/sessions/resolve
func (a *api) resolve(w http.ResponseWriter, r *http.Request, c *call) error {
	outcome := func(source, o string) { a.met.resolves.WithLabelValues(source, o).Inc() }
	if err := a.rateLimited(w, c); err != nil {
		outcome("none", "rate_limited")
		return err
	}
	var req client.ResolveRequest
	if err := decodeResolve(r, &req); err != nil {
		outcome("none", "invalid_request")
		return err
	}
	creds := manager.Credentials{
		SessionToken: sessionToken(r, req.SessionToken),
		AccessToken:  req.AccessToken,
		RefreshToken: req.RefreshToken,
		Device:       req.Device,
	}
	if creds.AccessToken == "" {
		creds.AccessToken = r.Header.Get(client.HeaderAccessToken)
	}
	if creds.RefreshToken == "" {
		creds.RefreshToken = r.Header.Get(client.HeaderRefreshToken)
	}
	if creds.SessionToken == "" && creds.AccessToken == "" && creds.RefreshToken == "" {
		outcome("none", "invalid_request")
		return invalidRequest("no credentials: send sessionToken, accessToken or refreshToken (body or %s/%s/%s headers)",
			client.HeaderSessionToken, client.HeaderAccessToken, client.HeaderRefreshToken)
	}
	res, err := a.mgr.Resolve(r.Context(), creds)
	if err != nil {
		ae := classify(err)
		switch ae.code {
		case client.CodeInvalidToken:
			outcome("none", "no_session")
			return a.tokenFailed(c)
		case client.CodeStoreUnavailable, client.CodeUpstreamUnavailable, client.CodeInvalidRequest, client.CodeRateLimited:
			outcome("none", ae.code)
		default:
			outcome("none", "error")
		}
		return err
	}
	outcome(res.Source.String(), "ok")
	writeResolution(w, &client.Resolution{
		Session:      res.Session,
		Source:       res.Source.String(),
		SessionToken: res.SessionToken,
		AccessToken:  res.AccessToken,
		RefreshToken: res.RefreshToken,
		Extended:     res.Extended,
		Cookies:      client.CookiesFromHTTP(res.Cookies),
	})
	return nil
}

// POST /v1/sessions/lookup
func (a *api) lookup(w http.ResponseWriter, r *http.Request, c *call) error {
	token, err := a.tokenRequest(w, r, c)
	if err != nil {
		return err
	}
	s, err := a.mgr.Lookup(r.Context(), token)
	if err != nil {
		return a.tokenError(c, err)
	}
	writeJSON(w, http.StatusOK, client.SessionResponse{Session: s})
	return nil
}

// POST /v1/sessions/touch
func (a *api) touch(w http.ResponseWriter, r *http.Request, c *call) error {
	token, err := a.tokenRequest(w, r, c)
	if err != nil {
		return err
	}
	s, extended, err := a.mgr.Touch(r.Context(), token)
	if err != nil {
		return a.tokenError(c, err)
	}
	var cookies []*http.Cookie
	if extended {
		cookies = append(cookies, a.mgr.SessionCookie(token, s.ExpiresAt))
	}
	writeJSON(w, http.StatusOK, client.TouchResponse{Session: s, Extended: extended, Cookies: client.CookiesFromHTTP(cookies)})
	return nil
}

// POST /v1/sessions/signout. Signing out is idempotent: a well-formed token
// without a live session still gets the cookies that clear the browser's
// (Revoked says whether a session ended).
func (a *api) signOut(w http.ResponseWriter, r *http.Request, c *call) error {
	token, err := a.tokenRequest(w, r, c)
	if err != nil {
		return err
	}
	// The manager answers a malformed token as it answers an unknown one
	// (no session); only sign-out tells them apart, as documented.
	if _, err := store.IDFromToken(token); err != nil {
		return a.tokenFailed(c)
	}
	revoked := true
	if err := a.mgr.RevokeToken(r.Context(), token); err != nil {
		if !errors.Is(err, manager.ErrNoSession) {
			return err
		}
		revoked = false
	}
	writeJSON(w, http.StatusOK, client.SignOutResponse{Revoked: revoked, Cookies: client.CookiesFromHTTP(a.mgr.ClearCookies())})
	return nil
}

// tokenRequest reads {"token": ...} (or X-Session-Token) after the rate
// limit check. A malformed token is left to the manager, which refuses it
// before any store call (ErrNoSession): checking it here too would hash
// every token twice.
func (a *api) tokenRequest(w http.ResponseWriter, r *http.Request, c *call) (string, error) {
	if err := a.rateLimited(w, c); err != nil {
		return "", err
	}
	var req client.TokenRequest
	if err := decode(r, &req, true); err != nil {
		return "", err
	}
	token := sessionToken(r, req.Token)
	if token == "" {
		return "", invalidRequest("a session token is required (body field \"token\" or header %s)", client.HeaderSessionToken)
	}
	return token, nil
}

// tokenError maps a failed lookup of a token: no session (the manager turns
// the store's ErrNotFound into ErrNoSession) is invalid_token and counts
// against the caller.
func (a *api) tokenError(c *call, err error) error {
	if errors.Is(err, manager.ErrNoSession) {
		return a.tokenFailed(c)
	}
	return err
}

// userID returns the {userId} path value, validated.
func userID(r *http.Request) (string, error) {
	id := r.PathValue("userId")
	if err := store.ValidateUserID(id); err != nil {
		return "", err
	}
	return id, nil
}

// PUT /v1/users/{userId}/profile
func (a *api) updateUser(w http.ResponseWriter, r *http.Request, c *call) error {
	uid, err := userID(r)
	if err != nil {
		return err
	}
	var req client.UpdateUserRequest
	if err := decode(r, &req, false); err != nil {
		return err
	}
	if len(req.User) == 0 {
		return invalidRequest("field \"user\" is required (send null to clear the profile)")
	}
	n, err := a.mgr.UpdateSession(r.Context(), uid, noUser(req.User))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.UpdateUserResponse{Updated: n})
	return nil
}

// GET /v1/users/{userId}/sessions
func (a *api) listSessions(w http.ResponseWriter, r *http.Request, c *call) error {
	uid, err := userID(r)
	if err != nil {
		return err
	}
	ss, err := a.mgr.GetUserSessions(r.Context(), uid)
	if err != nil {
		return err
	}
	if ss == nil {
		ss = []*store.Session{}
	}
	writeJSON(w, http.StatusOK, client.SessionList{Sessions: ss})
	return nil
}

// DELETE /v1/users/{userId}/sessions
func (a *api) revokeAll(w http.ResponseWriter, r *http.Request, c *call) error {
	uid, err := userID(r)
	if err != nil {
		return err
	}
	n, err := a.mgr.InvalidateUserSessions(r.Context(), uid)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, client.RevokeAllResponse{Revoked: n})
	return nil
}

// DELETE /v1/users/{userId}/sessions/{sessionId}
func (a *api) revokeOne(w http.ResponseWriter, r *http.Request, c *call) error {
	uid, err := userID(r)
	if err != nil {
		return err
	}
	// A malformed ID, another user's ID and an unknown one are all
	// ErrNoSession from the manager (the first two without a store call),
	// so each gets the same not_found.
	if err := a.mgr.RevokeSession(r.Context(), uid, r.PathValue("sessionId")); err != nil {
		if errors.Is(err, manager.ErrNoSession) {
			return errNotFound
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// GET /healthz: the process is alive. It never touches the store, so a
// store outage does not make an orchestrator restart healthy processes.
func (a *api) healthz(w http.ResponseWriter, r *http.Request, c *call) error {
	writeJSON(w, http.StatusOK, client.Status{Status: "ok"})
	return nil
}

// GET /readyz: this instance should get traffic: it is not shutting down
// and its store answers.
func (a *api) readyz(w http.ResponseWriter, r *http.Request, c *call) error {
	if a.draining.Load() {
		return &apiError{http.StatusServiceUnavailable, client.CodeShuttingDown, "shutting down"}
	}
	if a.ping != nil {
		ctx, cancel := context.WithTimeout(r.Context(), min(readyTimeout, a.requestTimeout))
		defer cancel()
		if err := a.ping(ctx); err != nil {
			a.log.Warn("readiness check failed", "err", err.Error())
			return &apiError{http.StatusServiceUnavailable, client.CodeStoreUnavailable, "the session store does not answer"}
		}
	}
	writeJSON(w, http.StatusOK, client.Status{Status: "ready"})
	return nil
}

func (a *api) serveMetrics(w http.ResponseWriter, r *http.Request, c *call) error {
	a.met.handler.ServeHTTP(w, r)
	return nil
}

func (a *api) notFound(w http.ResponseWriter, r *http.Request, c *call) error {
	return &apiError{http.StatusNotFound, client.CodeNotFound, "no such route (see openapi.yaml)"}
}
