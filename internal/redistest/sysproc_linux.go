package redistest

import "syscall"

// sysProcAttr makes the kernel kill a started process when the test binary
// dies, so no redis-server outlives a crashed or killed test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
