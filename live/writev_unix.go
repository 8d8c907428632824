//go:build linux || darwin

package live

import "golang.org/x/sys/unix"

func sysWritev(fd int, bufs [][]byte) (int, error) { return unix.Writev(fd, bufs) }
