package tlsrec

import (
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Options bound the handshakes of a Runner. Zero fields take the defaults in brackets.
type Options struct {
	// MaxHandshakes is how many handshakes run at once, each on its own goroutine
	// holding a tls.Conn (about 28 KB with its stack, docs/tls.md) [256]. A slot is held
	// from the client's first byte until its Finished — one round trip in TLS 1.3, two in
	// TLS 1.2 — so it bounds the handshake rate to about MaxHandshakes per round trip.
	MaxHandshakes int
	// MaxQueued is how many handshakes may wait for a slot, holding only the bytes their
	// client sent [4096]. One more is refused with ErrBusy.
	MaxQueued int
	// HandshakeTimeout is how long a handshake may take from Start, waiting included
	// [10 s]. Then it fails with ErrHandshakeTimeout and its goroutine, if any, ends.
	HandshakeTimeout time.Duration
	// MaxHandshakeInput bounds the client's bytes that the handshake has not consumed yet
	// [64 KiB]. More fail it with ErrHandshakeInput.
	MaxHandshakeInput int
}

func (o Options) withDefaults() Options {
	if o.MaxHandshakes <= 0 {
		o.MaxHandshakes = 256
	}
	if o.MaxQueued <= 0 {
		o.MaxQueued = 4096
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.MaxHandshakeInput <= 0 {
		o.MaxHandshakeInput = 64 << 10
	}
	return o
}

// A Runner runs server handshakes with crypto/tls, at most Options.MaxHandshakes at a
// time, and turns each finished one into a Conn. Its methods are safe for concurrent use.
type Runner struct {
	opts Options
	// base is the Config every tls.Server gets. Its GetConfigForClient hands each
	// handshake its own clone of user carrying a capturing KeyLogWriter. Session ticket
	// keys that the user did not set explicitly are base's automatic, rotating keys, so
	// they are shared by every connection.
	base          *tls.Config
	user          *tls.Config
	userGetConfig func(*tls.ClientHelloInfo) (*tls.Config, error)

	mu      sync.Mutex
	running map[*Handshake]struct{}
	queue   []*Handshake
	workers int
	closed  bool
	wg      sync.WaitGroup
}

// NewRunner makes a Runner serving cfg, which it clones (later changes to cfg are not
// seen). TLS versions below 1.2 are refused, and TLS 1.2 is restricted to the ECDHE
// AES-GCM and ChaCha20-Poly1305 suites (TLS12CipherSuites, intersected with
// cfg.CipherSuites when set). A Config returned by cfg.GetConfigForClient is restricted
// the same way. cfg.KeyLogWriter still receives every secret.
func NewRunner(cfg *tls.Config, opts Options) (*Runner, error) {
	if cfg == nil {
		return nil, errors.New("tlsrec: nil tls.Config")
	}
	user := cfg.Clone()
	user.GetConfigForClient = nil
	if err := restrict(user); err != nil {
		return nil, err
	}
	r := &Runner{
		opts:          opts.withDefaults(),
		user:          user,
		userGetConfig: cfg.GetConfigForClient,
		running:       make(map[*Handshake]struct{}),
	}
	r.base = user.Clone()
	r.base.GetConfigForClient = r.configFor
	return r, nil
}

// restrict limits cfg to what Conn can carry.
func restrict(cfg *tls.Config) error {
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if cfg.MaxVersion != 0 && cfg.MaxVersion < tls.VersionTLS12 {
		return errors.New("tlsrec: MaxVersion below TLS 1.2")
	}
	ours := TLS12CipherSuites()
	if cfg.CipherSuites == nil {
		cfg.CipherSuites = ours
		return nil
	}
	var keep []uint16
	for _, id := range cfg.CipherSuites {
		if slices.Contains(ours, id) {
			keep = append(keep, id)
		}
	}
	if len(keep) == 0 {
		// An empty list would mean crypto/tls's defaults: allow TLS 1.3 only instead.
		if cfg.MaxVersion == tls.VersionTLS12 {
			return errors.New("tlsrec: no TLS 1.2 cipher suite that tlsrec carries")
		}
		cfg.MinVersion = tls.VersionTLS13
		keep = ours
	}
	cfg.CipherSuites = keep
	return nil
}

// configFor is base's GetConfigForClient: a clone per handshake, so that its KeyLogWriter
// knows which handshake the secrets belong to.
func (r *Runner) configFor(chi *tls.ClientHelloInfo) (*tls.Config, error) {
	h := chi.Conn.(hsConn).h
	src := r.user
	if r.userGetConfig != nil {
		c, err := r.userGetConfig(chi)
		if err != nil {
			return nil, err
		}
		if c != nil {
			src = c
		}
	}
	cfg := src.Clone()
	cfg.GetConfigForClient = nil
	if src != r.user {
		if err := restrict(cfg); err != nil {
			return nil, err
		}
	}
	cfg.KeyLogWriter = keyCapture{h: h, next: src.KeyLogWriter}
	cfg.UnwrapSession = r.unwrapSession(src)
	return cfg, nil
}

// unwrapSession refuses to resume TLS 1.2 sessions: crypto/tls does not log the master
// secret of a resumed TLS 1.2 session, so its records could not be taken over. Such a
// client gets a full handshake. TLS 1.3 tickets are opened as crypto/tls would: with the
// user's UnwrapSession, else with the ticket keys of the Config the handshake runs
// under (explicit keys of a GetConfigForClient Config first, then the shared ones).
func (r *Runner) unwrapSession(src *tls.Config) func([]byte, tls.ConnectionState) (*tls.SessionState, error) {
	user := src.UnwrapSession
	return func(identity []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		if cs.Version != tls.VersionTLS13 {
			return nil, nil
		}
		if user != nil {
			return user(identity, cs)
		}
		if src != r.user {
			if ss, err := src.DecryptTicket(identity, cs); ss != nil || err != nil {
				return ss, err
			}
		}
		return r.base.DecryptTicket(identity, cs)
	}
}

// Start begins the handshake of one accepted connection. No goroutine runs for it until
// its client's first bytes arrive through Feed. notify is called, without locks held,
// whenever new output is ready (see Output) and when the handshake has ended (see Done).
// It runs on the handshake's goroutine, the timeout's or Runner.Close's — possibly two
// at once — must not block, and may call any method of the Handshake. A nil notify is
// never called: the caller polls. local and remote are what ClientHelloInfo.Conn
// reports to the Config's callbacks.
func (r *Runner) Start(local, remote net.Addr, notify func()) *Handshake {
	if notify == nil {
		notify = func() {}
	}
	h := &Handshake{r: r, notify: notify, local: local, remote: remote}
	h.cond.L = &h.mu
	// A stopped timer stays in the runtime's timer heap until its time comes, and with
	// it its function: through ref, it holds the Handshake (and the Conn it made) only
	// until the handshake ends.
	ref := new(atomic.Pointer[Handshake])
	ref.Store(h)
	h.timerRef = ref
	h.timer = time.AfterFunc(r.opts.HandshakeTimeout, func() {
		if h := ref.Load(); h != nil {
			h.fail(ErrHandshakeTimeout, true)
		}
	})
	return h
}

// schedule runs h on a free slot or queues it; it refuses it when closed or full.
func (r *Runner) schedule(h *Handshake) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return ErrAborted
	case r.workers < r.opts.MaxHandshakes:
		r.workers++
		r.running[h] = struct{}{}
		r.wg.Add(1)
		go r.work(h)
		return nil
	case len(r.queue) < r.opts.MaxQueued:
		r.queue = append(r.queue, h)
		return nil
	}
	return ErrBusy
}

// work runs handshakes until the queue is empty.
func (r *Runner) work(h *Handshake) {
	defer r.wg.Done()
	for h != nil {
		h.run()
		r.mu.Lock()
		delete(r.running, h)
		h = nil
		for len(r.queue) > 0 && h == nil {
			next := r.queue[0]
			r.queue[0] = nil
			r.queue = r.queue[1:]
			if !next.Done() {
				h = next
			}
		}
		if len(r.queue) == 0 {
			r.queue = nil // let the backing array go
		}
		if h == nil {
			r.workers--
		} else {
			r.running[h] = struct{}{}
		}
		r.mu.Unlock()
	}
}

// Close aborts every queued and running handshake (ErrAborted; notify is called) and
// waits for their goroutines to end. Start still works afterwards, but Feed fails.
func (r *Runner) Close() {
	r.mu.Lock()
	r.closed = true
	hs := append(r.queue, mapKeys(r.running)...)
	r.queue = nil
	r.mu.Unlock()
	for _, h := range hs {
		h.fail(ErrAborted, true)
	}
	r.wg.Wait()
}

// Stats is a snapshot of a Runner's handshakes.
type Stats struct {
	Running, Queued int
}

// Stats reports how many handshakes run and wait now.
func (r *Runner) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Running: r.workers, Queued: len(r.queue)}
}

func mapKeys(m map[*Handshake]struct{}) []*Handshake {
	out := make([]*Handshake, 0, len(m))
	for h := range m {
		out = append(out, h)
	}
	return out
}
