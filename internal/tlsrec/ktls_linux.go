package tlsrec

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// ProbeKTLS reports whether this kernel accepts the "tls" upper-layer protocol on a TCP
// socket (setsockopt TCP_ULP), the first step of handing a Conn's keys to kernel TLS.
// It opens a loopback connection to try; nil means the kernel accepted it. This package
// does not carry records through kernel TLS yet; the probe says whether it could.
func ProbeKTLS() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("%w: no loopback socket to probe with: %v", ErrKTLSUnavailable, err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
		close(accepted)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("%w: no loopback socket to probe with: %v", ErrKTLSUnavailable, err)
	}
	defer c.Close()
	if peer, ok := <-accepted; ok {
		defer peer.Close()
	}
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrKTLSUnavailable, err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_ULP, "tls")
	}); err != nil {
		return fmt.Errorf("%w: %v", ErrKTLSUnavailable, err)
	}
	switch {
	case serr == nil:
		return nil
	case errors.Is(serr, syscall.ENOENT):
		return fmt.Errorf("%w: the kernel has no tls ULP (CONFIG_TLS, modprobe tls): %v", ErrKTLSUnavailable, serr)
	}
	return fmt.Errorf("%w: setsockopt TCP_ULP tls: %v", ErrKTLSUnavailable, serr)
}
