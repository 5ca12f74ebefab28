package main

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sessiond/sessiond/manager"
)

// metrics are sessiond's Prometheus series. Labels are bounded sets (route
// patterns, status codes, fixed outcome names): never a user ID, session ID
// or token, which would leak identities and explode the series count.
type metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec   // route, method, code
	duration     *prometheus.HistogramVec // route, method
	inflight     prometheus.Gauge
	storeErrors  *prometheus.CounterVec // operation
	upstreamErrs *prometheus.CounterVec // operation
	resolves     *prometheus.CounterVec // source, outcome
	authFailures *prometheus.CounterVec // reason
	rateLimited  prometheus.Counter
	keyReloads   *prometheus.CounterVec // result
	events       *prometheus.CounterVec // event, detail
	handler      http.Handler           // serves the registry in the text format
}

// newMetrics registers sessiond's series on a registry of its own, so two
// servers in one test process do not collide on the global one.
func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sessiond_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sessiond_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_store_errors_total",
			Help: "API operations that failed because the session store was unavailable.",
		}, []string{"operation"}),
		upstreamErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_upstream_errors_total",
			Help: "API operations that failed because the upstream API was unavailable.",
		}, []string{"operation"}),
		resolves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_resolve_total",
			Help: "Resolve outcomes. source: session, jwt, refresh or none; outcome: ok, no_session, invalid_request, rate_limited, store_unavailable, upstream_unavailable or error.",
		}, []string{"source", "outcome"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_auth_failures_total",
			Help: "Refused callers by reason: missing_key, wrong_key, no_client_cert.",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessiond_rate_limited_total",
			Help: "Requests refused because their caller made too many failed token checks.",
		}),
		keyReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_api_key_reloads_total",
			Help: "Reloads of --api-key-file that changed the keys (result=changed) or failed and kept the current keys (result=error).",
		}, []string{"result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessiond_session_events_total",
			Help: "Session events from the manager. event: created (detail: signin, jwt or refresh), revoked (detail: revoked, evicted, idle, replaced), signout, refreshed, invalidated (counts users signed out everywhere).",
		}, []string{"event", "detail"}),
	}
	reg.MustRegister(m.events, m.requests, m.duration, m.inflight, m.storeErrors, m.upstreamErrs,
		m.resolves, m.authFailures, m.rateLimited, m.keyReloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Both results exist from the start at 0, so an alert on an increase
	// of result="error" fires on the first failed reload, not the second.
	m.keyReloads.WithLabelValues("changed")
	m.keyReloads.WithLabelValues("error")
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
	return m
}

// hooks count the manager's session events.
func (m *metrics) hooks() manager.Hooks {
	return manager.Hooks{
		SessionCreated: func(_ context.Context, e manager.Event) {
			// A sign-in (POST /v1/sessions) has source "session"; the
			// resolve chain's sessions "jwt" or "refresh".
			detail := e.Source.String()
			if e.Source == manager.SourceSession || detail == "" {
				detail = "signin"
			}
			m.events.WithLabelValues("created", detail).Inc()
		},
		SessionRevoked: func(_ context.Context, e manager.Event) {
			m.events.WithLabelValues("revoked", e.Reason).Inc()
		},
		SignOut: func(context.Context, manager.Event) { m.events.WithLabelValues("signout", "").Inc() },
		Refreshed: func(context.Context, manager.Event) {
			m.events.WithLabelValues("refreshed", "").Inc()
		},
		Invalidated: func(context.Context, manager.Event) {
			m.events.WithLabelValues("invalidated", "").Inc()
		},
	}
}
