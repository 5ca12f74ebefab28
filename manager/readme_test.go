package manager_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestREADMEQuotesExample keeps the README's "Using the library" code equal
// to the body of Example, which go test compiles and runs: the quickstart
// cannot rot.
func TestREADMEQuotesExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	require.NoError(t, err)
	src, err := os.ReadFile("example_test.go")
	require.NoError(t, err)

	_, section, ok := strings.Cut(string(readme), "## Using the library\n")
	require.True(t, ok, "README has no \"## Using the library\" section")
	_, block, ok := strings.Cut(section, "```go\n")
	require.True(t, ok, "the section has no go code block")
	block, _, ok = strings.Cut(block, "```\n")
	require.True(t, ok, "the code block is not closed")

	_, body, ok := strings.Cut(string(src), "func Example() {\n")
	require.True(t, ok, "example_test.go has no func Example")
	body, _, ok = strings.Cut(body, "\n}\n")
	require.True(t, ok)
	var want strings.Builder
	for _, line := range strings.Split(body, "\n") {
		want.WriteString(strings.TrimPrefix(line, "\t"))
		want.WriteString("\n")
	}
	require.Equal(t, want.String(), block, "README's quickstart differs from Example in manager/example_test.go")
}
