//go:build !linux

package srvstats

// RSS returns 0: the resident set is read from /proc on Linux only.
func RSS() uint64 { return 0 }

// CPUSelf returns 0, 0: CPU time is read on Linux only.
func CPUSelf() (user, sys int64) { return 0, 0 }

// FDs returns -1: open descriptors are counted on Linux only.
func FDs() int { return -1 }

// Threads returns 0: threads are counted on Linux only.
func Threads() int { return 0 }
