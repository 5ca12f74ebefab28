package integration_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// curlLine is the example sessiond prints: one indented curl command.
var curlLine = regexp.MustCompile(`(?m)^\s+(curl .+)$`)

// `sessiond` run bare (no flags) starts on the memory store, prints where
// it listens and a curl example, and that example, run as printed, signs a
// user in. The only difference from a bare machine: SESSIOND_LISTEN picks
// a free port, because 8080 may be taken on a shared test machine.
func TestBareStartCurlExample(t *testing.T) {
	p := sessiondtest.Start(t, sessiondtest.Options{
		Bare: true,
		Env:  []string{"SESSIOND_LISTEN=127.0.0.1:0"},
	})
	out := p.Stdout()
	require.Contains(t, out, "sessiond listening on "+p.BaseURL()+" (store: memory)")
	m := curlLine.FindStringSubmatch(out)
	require.NotNil(t, m, "no curl example in:\n%s", out)
	example := m[1]
	require.Contains(t, example, p.BaseURL()+"/v1/sessions")

	var body []byte
	if curl, err := exec.LookPath("curl"); err == nil && curl != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// Run exactly what was printed, as a user pastes it into a shell.
		body, err = exec.CommandContext(ctx, "sh", "-c", example).Output()
		require.NoError(t, err, "running %s", example)
	} else {
		body = sameRequestInGo(t, example)
	}
	var created client.CreateResponse
	require.NoError(t, json.Unmarshal(body, &created), "curl printed %s", body)
	require.NotEmpty(t, created.Token)
	require.Equal(t, "alice", created.Session.UserID)
	require.JSONEq(t, `{"name":"Alice"}`, string(created.Session.User))

	res, err := p.Client().Resolve(context.Background(), client.ResolveRequest{SessionToken: created.Token})
	require.NoError(t, err)
	require.Equal(t, created.Session.ID, res.Session.ID)
	require.Equal(t, 0, p.Stop())
	require.False(t, p.Logged(created.Token), "the session token is in the logs")
}

// sameRequestInGo sends the request of a printed curl example (URL and
// -d body) when no curl binary is installed.
func sameRequestInGo(t *testing.T, example string) []byte {
	t.Helper()
	url := regexp.MustCompile(`https?://\S+`).FindString(example)
	data := regexp.MustCompile(`-d '([^']*)'`).FindStringSubmatch(example)
	require.NotEmpty(t, url, "no URL in %s", example)
	require.NotNil(t, data, "no -d body in %s", example)
	resp, err := http.Post(url, "application/json", strings.NewReader(data[1]))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	var raw json.RawMessage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&raw))
	return raw
}
