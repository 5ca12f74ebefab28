//go:build !linux

package sessiondtest

import "syscall"

// sysProcAttr: only Linux has a parent-death signal; elsewhere test cleanup
// alone stops the servers.
func sysProcAttr() *syscall.SysProcAttr { return nil }
