package integration_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// Helpers of the fault tests (fault_*_test.go, soak_test.go,
// refresh_test.go): a TCP proxy that injects faults between sessiond and
// Redis, bounded parallel loops, and a /metrics reader.

// proxyMode is what the fault proxy does to the traffic.
type proxyMode int32

const (
	proxyPass    proxyMode = iota // forward bytes as they come
	proxyLatency                  // hold every chunk for the configured delay
	proxyStall                    // accept and read, forward nothing: a hung server
	proxyReset                    // answer every connection, old and new, with a TCP RST
)

// faultProxy is a TCP proxy in the test process, between sessiond and a
// redis-server (toxiproxy is not available to this build). It counts
// connections, so a test can prove the client's pool stays bounded.
type faultProxy struct {
	ln      net.Listener
	target  string
	mode    atomic.Int32
	latency atomic.Int64 // time.Duration, for proxyLatency

	mu      sync.Mutex
	conns   map[net.Conn]bool // client side of every open connection
	wg      sync.WaitGroup
	open    atomic.Int64 // open client connections now
	maxOpen atomic.Int64 // most open at once since the last ResetMax
	total   atomic.Int64 // accepted since start
}

// startFaultProxy listens on a free loopback port and forwards to target;
// the test's cleanup closes it and every connection.
func startFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) Addr() string { return p.ln.Addr().String() }

// URL is a redis:// URL through the proxy.
func (p *faultProxy) URL() string { return "redis://" + p.Addr() }

// Set switches the fault; proxyReset also resets every open connection.
func (p *faultProxy) Set(m proxyMode, latency time.Duration) {
	p.latency.Store(int64(latency))
	p.mode.Store(int32(m))
	if m == proxyReset {
		p.mu.Lock()
		for c := range p.conns {
			resetConn(c)
		}
		p.mu.Unlock()
	}
}

// ResetMax restarts the high-water mark of open connections at the
// current count.
func (p *faultProxy) ResetMax() { p.maxOpen.Store(p.open.Load()) }

func (p *faultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// resetConn closes c with SO_LINGER 0: the peer gets an RST, as from a
// crashed middlebox, not a clean FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.total.Add(1)
		if proxyMode(p.mode.Load()) == proxyReset {
			resetConn(c)
			continue
		}
		n := p.open.Add(1)
		for {
			m := p.maxOpen.Load()
			if n <= m || p.maxOpen.CompareAndSwap(m, n) {
				break
			}
		}
		p.mu.Lock()
		p.conns[c] = true
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *faultProxy) serve(c net.Conn) {
	defer p.wg.Done()
	// The client's side counts as open until its reader sees it closed,
	// however long the data already read is held back.
	var closed sync.Once
	clientGone := func() { closed.Do(func() { p.open.Add(-1) }) }
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
		clientGone()
	}()
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	// pipe copies src to dst: a reader that notices a close at once, and
	// a writer that delivers each chunk after the fault's delay.
	pipe := func(dst, src net.Conn, onEOF func()) {
		defer func() { done <- struct{}{} }()
		type chunk struct {
			b  []byte
			at time.Time
		}
		chunks := make(chan chunk, 64)
		writerDone := make(chan struct{})
		go func() {
			defer close(writerDone)
			for ch := range chunks {
				time.Sleep(time.Until(ch.at))
				if _, err := dst.Write(ch.b); err != nil {
					dst.Close()
					src.Close()
					for range chunks {
					}
					return
				}
			}
		}()
		defer func() {
			close(chunks)
			<-writerDone
		}()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				at := time.Now()
				switch proxyMode(p.mode.Load()) {
				case proxyLatency:
					at = at.Add(time.Duration(p.latency.Load()))
				case proxyStall:
					// Swallow everything: the peer waits for an answer
					// that never comes, until it gives up.
					continue
				case proxyReset:
					return
				}
				chunks <- chunk{append([]byte(nil), buf[:n]...), at}
			}
			if err != nil {
				if onEOF != nil {
					onEOF()
				}
				return
			}
		}
	}
	go pipe(up, c, clientGone)
	go pipe(c, up, nil)
	<-done
	// One side ended: end both, so the other pipe returns too.
	if proxyMode(p.mode.Load()) == proxyReset {
		resetConn(c)
	} else {
		c.Close()
	}
	up.Close()
	<-done
}

// callResult is one API call's outcome in a fault test.
type callResult struct {
	took   time.Duration
	status int    // HTTP status; 0 for a transport error
	code   string // API error code, "" on success
	err    error
}

// classifyCall turns a client call's error into a callResult.
func classifyCall(took time.Duration, okStatus int, err error) callResult {
	r := callResult{took: took, err: err}
	var ae *client.Error
	switch {
	case err == nil:
		r.status = okStatus
	case errors.As(err, &ae):
		r.status, r.code = ae.Status, ae.Code
	}
	return r
}

// parallel runs fn(i) for i in [0, n) on workers goroutines and returns
// once every call has returned.
func parallel(n, workers int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
}

// createSessions creates n sessions for users "u0".."u<users-1>" through
// c and returns the responses in order.
func createSessions(t *testing.T, c *client.Client, n, users int) []*client.CreateResponse {
	t.Helper()
	out := make([]*client.CreateResponse, n)
	errs := make([]error, n)
	parallel(n, 8, func(i int) {
		out[i], errs[i] = c.CreateSession(context.Background(), client.CreateRequest{UserID: fmt.Sprintf("u%d", i%users)})
	})
	for i, err := range errs {
		require.NoError(t, err, "create #%d", i)
	}
	return out
}

// metricValue reads one unlabelled gauge or counter from a sessiond's
// /metrics (served on the API listener when --metrics-addr is not set).
func metricValue(t *testing.T, p *sessiondtest.Process, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.BaseURL() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			require.NoError(t, err, "metric %s", name)
			return v
		}
	}
	require.NoError(t, sc.Err())
	_, _ = io.Copy(io.Discard, resp.Body)
	t.Fatalf("metric %s not found on pid %d", name, p.PID())
	return 0
}

// waitFor polls cond every interval until it holds or timeout passes, and
// returns how long it took; the test fails on timeout.
func waitFor(t *testing.T, timeout, interval time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(interval)
	}
	return time.Since(start)
}
