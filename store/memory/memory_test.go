package memory

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sessiond/sessiond/store"
	"github.com/sessiond/sessiond/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newTestStore(t *testing.T, now func() time.Time) store.Store {
	s := New(Options{Now: now})
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore(t *testing.T) { storetest.Run(t, newTestStore) }
