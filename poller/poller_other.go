//go:build !linux && !darwin && !freebsd && !netbsd && !openbsd && !dragonfly

package poller

// Without epoll or kqueue there is no poller: New fails with ErrUnsupported and callers
// use their portable path (a goroutine per connection).

const slotBits = 31

type kernel struct{}

func (p *Poller) open() error                    { return ErrUnsupported }
func (p *Poller) register(fd int, t Token) error { return ErrUnsupported }
func (p *Poller) unregister(fd int) error        { return ErrUnsupported }
func (p *Poller) wake() error                    { return ErrUnsupported }
func (p *Poller) release() error                 { return nil }
func (p *Poller) loop()                          { close(p.done) }
