package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/sessiond/sessiond/client"
)

// openAPIDoc is the part of openapi.yaml the tests read.
type openAPIDoc struct {
	OpenAPI string                                 `yaml:"openapi"`
	Paths   map[string]map[string]openAPIOperation `yaml:"paths"`
	Comps   struct {
		Schemas map[string]struct {
			Properties map[string]struct {
				Properties map[string]struct {
					Enum []string `yaml:"enum"`
				} `yaml:"properties"`
			} `yaml:"properties"`
		} `yaml:"schemas"`
	} `yaml:"components"`
}

type openAPIOperation struct {
	OperationID string           `yaml:"operationId"`
	Security    *[]yaml.Node     `yaml:"security"`
	Responses   map[string]any   `yaml:"responses"`
	Parameters  []map[string]any `yaml:"parameters"`
}

var httpMethods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

func loadOpenAPI(t *testing.T) (openAPIDoc, map[string]any) {
	t.Helper()
	data, err := os.ReadFile("openapi.yaml")
	require.NoError(t, err)
	var doc openAPIDoc
	require.NoError(t, yaml.Unmarshal(data, &doc))
	var raw map[string]any
	require.NoError(t, yaml.Unmarshal(data, &raw))
	require.True(t, strings.HasPrefix(doc.OpenAPI, "3."), "openapi version %q", doc.OpenAPI)
	return doc, raw
}

// TestOpenAPIMatchesRouter walks both sets: every operation of openapi.yaml
// is served by the real router under exactly that pattern, and every route
// the router serves is documented, with the same operationId and the same
// authentication requirement.
func TestOpenAPIMatchesRouter(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	env := newTestEnv(t, envOptions{})
	mux := env.api.handler().(*http.ServeMux)

	documented := map[string]openAPIOperation{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			require.Contains(t, httpMethods, method, "paths[%s] has %q, not an HTTP method", path, method)
			documented[strings.ToUpper(method)+" "+path] = op
		}
	}

	served := map[string]route{}
	for _, rt := range env.api.routes() {
		served[rt.method+" "+rt.path] = rt
	}

	// Every documented operation reaches the router under its own pattern
	// (a sample request with the path parameters filled in).
	param := regexp.MustCompile(`\{[^}]+\}`)
	for key := range documented {
		method, path, _ := strings.Cut(key, " ")
		req := httptest.NewRequest(method, param.ReplaceAllString(path, "x"), nil)
		_, pattern := mux.Handler(req)
		require.Equal(t, key, pattern, "documented %s is not served by the router", key)
	}
	// Every route the router serves is documented, consistently.
	for key, rt := range served {
		op, ok := documented[key]
		require.True(t, ok, "router serves %s, openapi.yaml does not document it", key)
		require.Equal(t, rt.name, op.OperationID, "operationId of %s", key)
		public := op.Security != nil && len(*op.Security) == 0
		require.Equal(t, !rt.auth, public, "%s: auth required by the router = %v, openapi.yaml says public = %v", key, rt.auth, public)
		require.NotEmpty(t, op.Responses, "%s has no responses", key)
	}
	require.Len(t, served, len(documented))
}

// TestOpenAPIRefsResolve: every $ref points at a component that exists, so
// code generators can load the document.
func TestOpenAPIRefsResolve(t *testing.T) {
	_, raw := loadOpenAPI(t)
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if k == "$ref" {
					refs = append(refs, c.(string))
				}
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(raw)
	require.NotEmpty(t, refs)
	for _, ref := range refs {
		parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
		var node any = raw
		for _, p := range parts {
			m, ok := node.(map[string]any)
			require.True(t, ok, "$ref %s: %s is not an object", ref, p)
			node, ok = m[p]
			require.True(t, ok, "$ref %s does not resolve", ref)
		}
	}
}

// TestOpenAPIErrorCodes: the documented enum of error codes is exactly the
// set of codes the client package defines.
func TestOpenAPIErrorCodes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	got := doc.Comps.Schemas["Error"].Properties["error"].Properties["code"].Enum
	want := []string{
		client.CodeInvalidRequest, client.CodeUnauthorized, client.CodeInvalidToken, client.CodeNotFound,
		client.CodeTooLarge, client.CodeTooManySessions, client.CodeRateLimited, client.CodeStoreUnavailable,
		client.CodeUpstreamUnavailable, client.CodeShuttingDown, client.CodeInternal,
	}
	slices.Sort(got)
	slices.Sort(want)
	require.Equal(t, want, got)
}
