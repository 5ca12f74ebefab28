package integration_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/redistest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// A caller without the API key, or with a wrong one, gets 401
// unauthorized on every API route and changes nothing; the right key, in
// either header, and the second key of a rotation pair are accepted.
func TestAPIKeyRequired(t *testing.T) {
	const oldKey = "old-key-still-valid-0123456789"
	rs := redistest.StartServer(t)
	p := sessiondtest.Start(t, sessiondtest.Options{
		APIKey:   sessiondtest.APIKey,
		RedisURL: rs.URL(),
		// Both keys of a rotation; the later entry wins over the one
		// Options.APIKey adds.
		Env: []string{"SESSIOND_API_KEYS=" + sessiondtest.APIKey + "," + oldKey},
	})
	ps := []*sessiondtest.Process{p}
	ctx := context.Background()

	send := func(method, path, key, header, body string) (int, client.ErrorBody) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, p.BaseURL()+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		switch header {
		case "bearer":
			req.Header.Set("Authorization", "Bearer "+key)
		case "x-api-key":
			req.Header.Set(client.HeaderAPIKey, key)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var eb client.ErrorBody
		if resp.StatusCode >= 400 {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&eb))
		}
		return resp.StatusCode, eb
	}

	create := `{"userId":"mallory"}`
	for _, tc := range []struct{ name, key, header string }{
		{"missing", "", ""},
		{"wrong bearer", "wrong-key-0123456789abcdef", "bearer"},
		{"wrong X-API-Key", "wrong-key-0123456789abcdef", "x-api-key"},
		{"prefix of the key", sessiondtest.APIKey[:20], "bearer"},
		{"empty bearer", "", "bearer"},
	} {
		for _, r := range []struct{ method, path, body string }{
			{"POST", "/v1/sessions", create},
			{"POST", "/v1/sessions/resolve", `{"sessionToken":"x"}`},
			{"GET", "/v1/users/mallory/sessions", ""},
			{"DELETE", "/v1/users/mallory/sessions", ""},
		} {
			status, eb := send(r.method, r.path, tc.key, tc.header, r.body)
			require.Equal(t, http.StatusUnauthorized, status, "%s key: %s %s", tc.name, r.method, r.path)
			require.Equal(t, client.CodeUnauthorized, eb.Error.Code, "%s key: %s %s", tc.name, r.method, r.path)
		}
	}

	// Nothing was created by the refused calls.
	sessions, err := p.Client().ListSessions(ctx, "mallory")
	require.NoError(t, err)
	require.Empty(t, sessions)

	status, _ := send("POST", "/v1/sessions", sessiondtest.APIKey, "x-api-key", create)
	require.Equal(t, http.StatusCreated, status)
	status, _ = send("POST", "/v1/sessions", oldKey, "bearer", create)
	require.Equal(t, http.StatusCreated, status, "the second key of a rotation pair")
	// Probes need no key.
	status, _ = send("GET", "/healthz", "", "", "")
	require.Equal(t, http.StatusOK, status)

	requireNotLogged(t, ps, sessiondtest.APIKey, oldKey)
}

// rawRequest writes head and then body (in chunks, stopping at the first
// write error, as the server may close before reading it all) while it
// reads the response, so an early answer is seen whatever happens to the
// upload.
func rawRequest(t *testing.T, addr, head string, body io.Reader) *http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
	_, err = io.WriteString(conn, head)
	require.NoError(t, err)
	go func() { _, _ = io.Copy(conn, body) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// A 10 MB body gets 413 too_large, whether its size is announced
// (refused before reading) or it comes chunked (cut at the limit), and
// creates no session.
func TestTenMegabyteBody(t *testing.T) {
	p := sessiondtest.Start(t, sessiondtest.Options{APIKey: sessiondtest.APIKey})
	const size = 10 << 20
	// A valid JSON create request padded to 10 MB with a huge profile: only
	// its size is wrong.
	huge := func() io.Reader {
		return io.MultiReader(strings.NewReader(`{"userId":"big","user":{"pad":"`),
			io.LimitReader(repeatReader('a'), size), strings.NewReader(`"}}`))
	}
	head := "POST /v1/sessions HTTP/1.1\r\nHost: sessiond\r\nAuthorization: Bearer " + sessiondtest.APIKey +
		"\r\nContent-Type: application/json\r\n"

	for name, h := range map[string]string{
		"content-length": head + fmt.Sprintf("Content-Length: %d\r\n\r\n", size+len(`{"userId":"big","user":{"pad":""}}`)),
		"chunked":        head + "Transfer-Encoding: chunked\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			body := huge()
			if name == "chunked" {
				body = chunked(body)
			}
			resp := rawRequest(t, p.Addr(), h, body)
			require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
			var eb client.ErrorBody
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&eb))
			require.Equal(t, client.CodeTooLarge, eb.Error.Code)
		})
	}
	sessions, err := p.Client().ListSessions(context.Background(), "big")
	require.NoError(t, err)
	require.Empty(t, sessions, "a refused body created a session")
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// chunked encodes r with HTTP/1.1 chunked transfer coding.
func chunked(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if _, werr := fmt.Fprintf(pw, "%x\r\n%s\r\n", n, buf[:n]); werr != nil {
					return
				}
			}
			if errors.Is(err, io.EOF) {
				_, _ = io.WriteString(pw, "0\r\n\r\n")
				pw.Close()
				return
			}
		}
	}()
	return pr
}

// A client that sends its headers a byte at a time (slowloris) is cut off
// once --read-header-timeout has passed, without an answer, while a normal
// request to the same process is served.
func TestSlowHeadersCutOff(t *testing.T) {
	const timeout = 500 * time.Millisecond
	p := sessiondtest.Start(t, sessiondtest.Options{
		APIKey: sessiondtest.APIKey,
		Args:   []string{"--read-header-timeout", timeout.String()},
	})

	conn, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	require.NoError(t, err)
	defer conn.Close()
	start := time.Now()
	// Bounded drip: 40 header bytes over 4 s at most, far past the timeout.
	stopped := make(chan error, 1)
	go func() {
		header := "POST /v1/sessions HTTP/1.1\r\nHost: s\r\nX-Slow: abcdefghij"
		for i := range len(header) {
			if _, err := conn.Write([]byte{header[i]}); err != nil {
				stopped <- err
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		stopped <- nil
	}()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	got, err := io.ReadAll(conn)
	cut := time.Since(start)
	require.NoError(t, err, "the server should close the connection (EOF), not time out the reader")
	// net/http closes the connection, after a 400 or without a word
	// depending on how the timeout surfaces; never a success.
	if len(got) > 0 {
		require.Regexp(t, `^HTTP/1\.1 4\d\d `, string(got))
		require.Contains(t, string(got), "Connection: close")
	}
	require.GreaterOrEqual(t, cut, timeout-50*time.Millisecond, "cut before --read-header-timeout")
	require.Less(t, cut, 3*time.Second, "not cut off near --read-header-timeout")

	// The drip was still going when the server hung up.
	select {
	case err := <-stopped:
		require.Fail(t, "the slow client had finished before the cut", "write error: %v", err)
	default:
	}
	require.NoError(t, p.Client().Healthz(context.Background()))
}

// Headers over sessiond's 64 KiB header limit get 431 without reaching a
// handler (a JWT and a few cookies fit well under it).
func TestHugeHeaders(t *testing.T) {
	p := sessiondtest.Start(t, sessiondtest.Options{APIKey: sessiondtest.APIKey})
	head := "POST /v1/sessions HTTP/1.1\r\nHost: sessiond\r\nAuthorization: Bearer " + sessiondtest.APIKey +
		"\r\nX-Pad: " + strings.Repeat("a", 100<<10) + "\r\nContent-Length: 2\r\n\r\n"
	resp := rawRequest(t, p.Addr(), head, strings.NewReader("{}"))
	require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	require.NotContains(t, p.Stderr(), `"route":"/v1/sessions"`, "the request reached the API")
}
