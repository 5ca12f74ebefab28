// Command sessiond-load measures sessiond's resolve path over real HTTP: it
// signs in -sessions users through the API, then -concurrency workers call
// POST /v1/sessions/resolve with those session tokens until -duration has
// passed or -requests have been sent, and it reports resolves per second
// and latency percentiles (p50, p90, p99, p99.9, max).
//
//	SESSIOND_LOAD_API_KEY=... sessiond-load -url http://127.0.0.1:8080 -duration 10s -concurrency 16
//
// The API key comes from SESSIOND_LOAD_API_KEY (or -api-key, which other
// users of the machine can see). Run it on the same host as sessiond over
// loopback to measure sessiond rather than the network; the driver's own
// CPU use counts against the host, so its figures are a floor.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessiond-load:", err)
		os.Exit(1)
	}
}

// maxSamples bounds the memory of the latency record (8 bytes each);
// requests beyond it are counted but not timed.
const maxSamples = 20_000_000

type config struct {
	url         string
	apiKey      string
	duration    time.Duration
	requests    int64
	concurrency int
	sessions    int
	warmup      time.Duration
	json        bool
}

func parseConfig(args []string, getenv func(string) string, out io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("sessiond-load", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8080", "base URL of the sessiond under test")
	fs.StringVar(&c.apiKey, "api-key", "", "API key; default: $SESSIOND_LOAD_API_KEY (preferred: the command line is visible to other users)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measure for this long (after the warm-up); 0: until -requests are sent")
	fs.Int64Var(&c.requests, "requests", 0, "stop after this many measured resolves; 0: until -duration has passed")
	fs.IntVar(&c.concurrency, "concurrency", 16, "concurrent workers, each with one request in flight")
	fs.IntVar(&c.sessions, "sessions", 1000, "sessions created before the run; the workers resolve them in turn")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "unmeasured resolves first (connections, caches, JIT of the Redis scripts)")
	fs.BoolVar(&c.json, "json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.apiKey == "" {
		c.apiKey = getenv("SESSIOND_LOAD_API_KEY")
	}
	u, err := url.Parse(c.url)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("-url %q: want http(s)://host:port", c.url)
	case c.duration < 0 || c.requests < 0 || c.warmup < 0:
		return nil, errors.New("-duration, -requests and -warmup must not be negative")
	case c.duration == 0 && c.requests == 0:
		return nil, errors.New("set -duration or -requests: the run must be bounded")
	case c.concurrency < 1 || c.concurrency > 10_000:
		return nil, fmt.Errorf("-concurrency %d: want 1 to 10000", c.concurrency)
	case c.sessions < 1 || c.sessions > 1_000_000:
		return nil, fmt.Errorf("-sessions %d: want 1 to 1000000", c.sessions)
	}
	return c, nil
}

// Report is the result of a run.
type Report struct {
	URL         string  `json:"url"`
	Concurrency int     `json:"concurrency"`
	Sessions    int     `json:"sessions"`
	Requests    int64   `json:"requests"` // measured resolves answered 200
	Errors      int64   `json:"errors"`   // measured resolves that failed
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"requestsPerSecond"`
	P50         float64 `json:"p50Ms"`
	P90         float64 `json:"p90Ms"`
	P99         float64 `json:"p99Ms"`
	P999        float64 `json:"p999Ms"`
	Max         float64 `json:"maxMs"`
	// FirstError describes the first failure, if any (never a token).
	FirstError string `json:"firstError,omitempty"`
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	d := newDriver(cfg)
	defer d.hc.CloseIdleConnections()

	bodies, err := d.createSessions(ctx)
	if err != nil {
		return err
	}
	if cfg.warmup > 0 {
		wctx, cancel := context.WithTimeout(ctx, cfg.warmup)
		d.load(wctx, bodies, 0, false)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	mctx := ctx
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		mctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	rep := d.load(mctx, bodies, cfg.requests, true)
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "resolve %s: %d requests in %.2fs with %d workers over %d sessions: %.0f req/s; latency p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms; errors %d\n",
		rep.URL, rep.Requests, rep.Seconds, rep.Concurrency, rep.Sessions, rep.PerSecond, rep.P50, rep.P90, rep.P99, rep.P999, rep.Max, rep.Errors)
	if rep.FirstError != "" {
		fmt.Fprintf(stdout, "first error: %s\n", rep.FirstError)
	}
	if rep.Errors > 0 {
		return fmt.Errorf("%d of %d resolves failed", rep.Errors, rep.Errors+rep.Requests)
	}
	return nil
}

type driver struct {
	cfg     *config
	hc      *http.Client
	resolve string
}

func newDriver(cfg *config) *driver {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// One kept-alive connection per worker: connection setup is not what
	// is measured.
	tr.MaxIdleConns = cfg.concurrency
	tr.MaxIdleConnsPerHost = cfg.concurrency
	return &driver{
		cfg:     cfg,
		hc:      &http.Client{Transport: tr, Timeout: 10 * time.Second},
		resolve: cfg.url + "/v1/sessions/resolve",
	}
}

func (d *driver) request(ctx context.Context, method, url string, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if d.cfg.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+d.cfg.apiKey)
	}
	return req, nil
}

// createSessions signs in cfg.sessions users (ten sessions per user, as
// devices) and returns the resolve request bodies of their tokens.
func (d *driver) createSessions(ctx context.Context) ([][]byte, error) {
	bodies := make([][]byte, d.cfg.sessions)
	var (
		next     atomic.Int64
		firstErr error
		once     sync.Once
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range min(d.cfg.concurrency, d.cfg.sessions) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) || ctx.Err() != nil {
					return
				}
				b, err := d.createOne(ctx, fmt.Sprintf("load-user-%d", i/10))
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				bodies[i] = b
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("create sessions: %w", firstErr)
	}
	return bodies, ctx.Err()
}

func (d *driver) createOne(ctx context.Context, userID string) ([]byte, error) {
	body, _ := json.Marshal(map[string]any{"userId": userID, "user": map[string]string{"name": userID}})
	req, err := d.request(ctx, http.MethodPost, d.cfg.url+"/v1/sessions", body)
	if err != nil {
		return nil, err
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("POST /v1/sessions: %s: %s", resp.Status, bytes.TrimSpace(data))
	}
	var created struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(data, &created); err != nil || created.Token == "" {
		return nil, fmt.Errorf("POST /v1/sessions: answer without a token")
	}
	return json.Marshal(map[string]string{"sessionToken": created.Token})
}

// load runs the workers until ctx ends or limit resolves (0: no limit)
// have been sent, and, when measure, reports on them.
func (d *driver) load(ctx context.Context, bodies [][]byte, limit int64, measure bool) Report {
	var (
		sent     atomic.Int64
		okCount  atomic.Int64
		errCount atomic.Int64
		firstErr atomic.Value
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
	)
	perWorker := maxSamples / d.cfg.concurrency
	start := time.Now()
	for w := range d.cfg.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for i := w; ; i += d.cfg.concurrency {
				if ctx.Err() != nil || limit > 0 && sent.Add(1) > limit {
					break
				}
				t0 := time.Now()
				err := d.resolveOne(ctx, bodies[i%len(bodies)])
				took := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						break // cut by the end of the run, not a failure
					}
					errCount.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				okCount.Add(1)
				if measure && len(lat) < perWorker {
					lat = append(lat, took)
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if !measure {
		return Report{}
	}
	slices.Sort(all)
	ms := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := min(len(all)-1, int(q*float64(len(all))))
		return float64(all[i].Microseconds()) / 1000
	}
	rep := Report{
		URL: d.cfg.url, Concurrency: d.cfg.concurrency, Sessions: d.cfg.sessions,
		Requests: okCount.Load(), Errors: errCount.Load(), Seconds: elapsed.Seconds(),
		P50: ms(0.50), P90: ms(0.90), P99: ms(0.99), P999: ms(0.999), Max: ms(1),
	}
	if rep.Seconds > 0 {
		rep.PerSecond = float64(rep.Requests) / rep.Seconds
	}
	if v := firstErr.Load(); v != nil {
		rep.FirstError = v.(string)
	}
	return rep
}

// resolveOne sends one resolve and checks that it answered 200.
func (d *driver) resolveOne(ctx context.Context, body []byte) error {
	req, err := d.request(ctx, http.MethodPost, d.resolve, body)
	if err != nil {
		return err
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return errors.New("resolve: " + resp.Status + ": " + strconv.Quote(string(bytes.TrimSpace(data))))
	}
	// Drain, so the connection is reused.
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}
