package manager_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine behind: the merged
// JWT and refresh steps run on goroutines of their own, which must end
// with their work.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
