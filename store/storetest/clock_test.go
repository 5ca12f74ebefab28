package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClock(t *testing.T) {
	start := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	c := NewClock(start)
	require.Equal(t, start, c.Now())
	require.Equal(t, start, c.Now(), "the clock moved by itself")

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				c.Advance(time.Millisecond)
				_ = c.Now()
			}
		})
	}
	wg.Wait()
	require.Equal(t, start.Add(800*time.Millisecond), c.Now())

	c.Set(start)
	require.Equal(t, start, c.Now())
	c.Advance(-time.Second)
	require.Equal(t, start.Add(-time.Second), c.Now())
}
