package sessiondtest

import "syscall"

// sysProcAttr makes the kernel kill a started sessiond when the test
// binary dies, so none outlives a crashed or killed test run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
