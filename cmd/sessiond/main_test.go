package main

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/sessiond/sessiond/internal/redistest"
)

// TestMain checks that run() and the handlers leave no goroutine behind:
// every server, store, Redis client and JWKS refresher they start is
// closed on the way out.
func TestMain(m *testing.M) {
	code := redistest.Main(m)
	if code == 0 {
		// Keep-alive connections of the tests' own HTTP clients are
		// theirs, not sessiond's.
		http.DefaultClient.CloseIdleConnections()
		if err := goleak.Find(goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
