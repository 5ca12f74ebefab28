package upstream

// SetRefreshWaitingHook installs testHookRefreshWaiting until the test ends.
func SetRefreshWaitingHook(cleanup func(func()), h func()) {
	testHookRefreshWaiting = h
	cleanup(func() { testHookRefreshWaiting = nil })
}
