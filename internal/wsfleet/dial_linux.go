package wsfleet

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"golang.org/x/sys/unix"
)

// SourceIPs are the default loopback source addresses connections are spread
// over, so that the fleet does not run out of ephemeral ports.
var SourceIPs = LoopbackSources(8)

// LoopbackSources returns n loopback addresses from 127.0.0.2 on (127.0.0.2 …
// 127.0.0.255, 127.0.1.0, …). Every 127.0.0.0/8 address is local on Linux.
func LoopbackSources(n int) []net.IP {
	ips := make([]net.IP, 0, n)
	for i := range n {
		v := i + 2
		ips = append(ips, net.IPv4(127, byte(v>>16), byte(v>>8), byte(v)))
	}
	return ips
}

// Dial opens a WebSocket connection to url from source address src (nil: the kernel
// picks), writes first (if not nil) as one masked text frame, and detaches the socket
// from the Go runtime. It returns the raw non-blocking fd, which the caller owns, and
// any bytes the server sent right behind the handshake. A non-101 answer is a
// ws.StatusError.
//
// The source address is bound with IP_BIND_ADDRESS_NO_PORT, so the kernel picks the
// port at connect time and needs it unique only per destination (and may reuse
// TIME_WAIT ports), rather than reserving it at bind time for every destination.
func Dial(ctx context.Context, url string, src net.IP, first []byte) (fd int, leftover []byte, err error) {
	fd, leftover, _, err = dial(ctx, url, src, first, false)
	return fd, leftover, err
}

// dial is Dial that, if deflate is set, offers permessage-deflate with no context
// takeover either way (what wsflate.DefaultParameters say) and reports whether the
// server accepted it.
func dial(ctx context.Context, url string, src net.IP, first []byte, deflate bool) (fd int, leftover []byte, deflated bool, err error) {
	d := ws.Dialer{
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{}
			if src != nil {
				nd.LocalAddr = &net.TCPAddr{IP: src}
				nd.Control = bindNoPort
			}
			return nd.DialContext(ctx, network, addr)
		},
	}
	if deflate {
		d.Extensions = append(d.Extensions, wsflate.DefaultParameters.Option())
	}
	conn, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return -1, nil, false, err
	}
	defer conn.Close()
	deflated = len(hs.Extensions) > 0 // gobwas/ws accepts only extensions that were offered
	if br != nil {
		leftover = make([]byte, br.Buffered())
		_, _ = br.Read(leftover)
		ws.PutReader(br)
	}
	if first != nil {
		if _, err := conn.Write(AppendClientFrame(nil, ws.OpText, first)); err != nil {
			return -1, nil, false, err
		}
	}
	if fd, err = Detach(conn); err != nil {
		return -1, nil, false, err
	}
	return fd, leftover, deflated, nil
}

func bindNoPort(network, address string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// Detach returns a dup of conn's socket, which stays non-blocking (and
// TCP_NODELAY: the dup shares the file description). The caller owns the new
// fd and should close conn, which then only drops the Go runtime's
// registration and the original number.
func Detach(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("wsfleet: %T has no SyscallConn", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(s uintptr) { fd, dupErr = syscall.Dup(int(s)) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	syscall.CloseOnExec(fd)
	return fd, nil
}

// DialSpec says how DialMany opens connections.
type DialSpec struct {
	URL         string
	From, To    int           // connection indexes [From, To)
	Concurrency int           // dials in flight at once (0: 1)
	Rate        int           // connections per second at most (0: unbounded)
	Sources     []net.IP      // connection i dials from Sources[i%len] (nil: SourceIPs; a nil entry: no binding)
	Attempts    int           // tries per connection (0: 3)
	Timeout     time.Duration // per attempt: connect and handshake (0: 10 s)
	// Deflate offers permessage-deflate (RFC 7692) with no context takeover either way;
	// Dialed.Deflate says whether the server accepted. The fleet never compresses what it
	// sends and does not inflate what it reads (Frame.RSV1 marks compressed messages).
	Deflate bool
	// First returns the first message of connection i (nil: none).
	First func(i int) []byte
	// Opened receives each new connection, which it then owns; it may be called
	// concurrently. An error stops DialMany, which returns it.
	Opened func(d Dialed) error
	// Failed, if set, receives each connection whose attempts all failed, with the last
	// error, and DialMany goes on; it may be called concurrently. If nil, the first such
	// failure stops DialMany, which returns it.
	Failed func(i int, err error)
}

// Dialed is a connection DialMany opened.
type Dialed struct {
	Index    int
	FD       int           // the raw socket (see Dial)
	Leftover []byte        // bytes received right behind the handshake
	Took     time.Duration // connect and handshake of the attempt that succeeded
	Deflate  bool          // permessage-deflate was offered (DialSpec.Deflate) and accepted
}

// DialMany opens connections From..To-1 at no more than Rate per second (paced in 10 ms
// batches), Concurrency at a time. It returns when every connection has been dialed or
// ctx is done.
func DialMany(ctx context.Context, s DialSpec) error {
	if s.Sources == nil {
		s.Sources = SourceIPs
	}
	if s.Attempts <= 0 {
		s.Attempts = 3
	}
	if s.Timeout <= 0 {
		s.Timeout = 10 * time.Second
	}
	return Paced(ctx, s.From, s.To, s.Concurrency, s.Rate, func(ctx context.Context, i int) error {
		return dialOne(ctx, s, i)
	})
}

func dialOne(ctx context.Context, s DialSpec, i int) error {
	var first []byte
	if s.First != nil {
		first = s.First(i)
	}
	var d Dialed
	err := Retry(ctx, s.Attempts, s.Timeout, func(ctx context.Context) error {
		start := time.Now()
		fd, leftover, deflated, err := dial(ctx, s.URL, s.Sources[i%len(s.Sources)], first, s.Deflate)
		d = Dialed{Index: i, FD: fd, Leftover: leftover, Took: time.Since(start), Deflate: deflated}
		return err
	})
	switch {
	case err == nil:
		return s.Opened(d)
	case ctx.Err() != nil:
		return nil // stopped: by the caller, or another connection's error is the one reported
	}
	if s.Failed != nil {
		s.Failed(i, err)
		return nil
	}
	return fmt.Errorf("dial %d: %w", i, err)
}
