package main

import (
	"bytes"
	"compress/flate"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/livepoll/livepoll/internal/wsfleet"
)

// With -compress the server app runs with its -compress flag and every subscriber offers
// permessage-deflate (no context takeover both ways), so the servers that support it
// send compressed frames; the client inflates them and counts the bytes each delivery
// took on the wire. The client fleet (internal/wsfleet) does not offer extensions, so the
// subscribers are dialed here and only then handed to its loops.

// dialCompressing opens subscribers [0, n) offering permessage-deflate, at most conc
// handshakes at once and rate per second, from the fleet's source addresses, and hands
// each to opened. Each connection gets one try: a failure ends the run.
func dialCompressing(ctx context.Context, url string, n, conc, rate int, first []byte, opened func(i, fd int, leftover []byte) error) error {
	sem := make(chan struct{}, max(conc, 1))
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(max(rate, 1))
	next := time.Now()
	for i := range n {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		select {
		case sem <- struct{}{}:
		case err := <-errc:
			wg.Wait()
			return err
		}
		wg.Go(func() {
			defer func() { <-sem }()
			src := wsfleet.SourceIPs[i%len(wsfleet.SourceIPs)]
			fd, leftover, err := dialDeflate(ctx, url, src, first)
			if err == nil {
				err = opened(i, fd, leftover)
			}
			if err != nil {
				select {
				case errc <- fmt.Errorf("subscriber %d: %w", i, err):
				default:
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// dialDeflate is wsfleet.Dial with a permessage-deflate offer that the server must accept.
func dialDeflate(ctx context.Context, url string, src net.IP, first []byte) (fd int, leftover []byte, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
		return nd.DialContext(ctx, network, addr)
	}}
	d.Extensions = append(d.Extensions, wsflate.DefaultParameters.Option())
	conn, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return -1, nil, err
	}
	defer conn.Close()
	if len(hs.Extensions) == 0 {
		return -1, nil, fmt.Errorf("the server did not accept permessage-deflate")
	}
	if br != nil {
		leftover = make([]byte, br.Buffered())
		_, _ = br.Read(leftover)
		ws.PutReader(br)
	}
	if _, err := conn.Write(wsfleet.AppendClientFrame(nil, ws.OpText, first)); err != nil {
		return -1, nil, err
	}
	fd, err = wsfleet.Detach(conn)
	return fd, leftover, err
}

// inflater inflates the compressed messages of one loop goroutine. The fleet's loop
// hands over payloads without their header, so a compressed message is told from a
// plain one by its first byte: every delivered envelope is a JSON object ('{'), and a
// compressed message is a flushed deflate stream, whose first block is never final, so
// its first byte is even, and '{' is odd.
type inflater struct {
	r       io.ReadCloser
	src     bytes.Reader
	in, out []byte
}

const deflateTail = "\x00\x00\xff\xff\x01\x00\x00\xff\xff"

// message returns p inflated if it is compressed (and whether it was), else p.
func (z *inflater) message(p []byte) ([]byte, bool, error) {
	if len(p) == 0 || p[0] == '{' {
		return p, false, nil
	}
	z.in = append(append(z.in[:0], p...), deflateTail...)
	z.src.Reset(z.in)
	if z.r == nil {
		z.r = flate.NewReader(&z.src)
	} else if err := z.r.(flate.Resetter).Reset(&z.src, nil); err != nil {
		return nil, true, err
	}
	b := bytes.NewBuffer(z.out[:0])
	if _, err := b.ReadFrom(z.r); err != nil {
		return nil, true, err
	}
	z.out = b.Bytes()
	return z.out, true, nil
}

// compressiblePad is the padding of a published message under -compress: text that
// compresses about as JSON does, where the plain run's x's would shrink to nothing.
func compressiblePad(n int) []byte {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "sym SYM%03d bid %d.%02d ask %d.%02d vol %d; ", i*7%1000, 100+i*13%50, i*31%100, 101+i*13%50, i*17%100, i*977%100000)
	}
	return []byte(b.String()[:n])
}
