package live

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"time"
)

const (
	defaultQueueSize = 256
	defaultReadLimit = 4 << 20 // 4 MiB

	defaultPingInterval = 30 * time.Second
	defaultIdleTimeout  = 60 * time.Second

	// closeTimeout bounds the closing handshake: after the server has sent its close frame
	// it waits this long for the client to close the TCP connection before closing it.
	closeTimeout = 2 * time.Second
)

// Options configures a Server. The zero value is usable. Fields mean what they mean in
// mizu's live package; see docs/migrating-from-mizu.md for the few deliberate differences.
type Options struct {
	// QueueSize is how many outgoing messages a session may have waiting while its socket
	// does not take them (default 256). Sending one more closes the session with
	// ErrQueueFull.
	QueueSize int

	// ReadLimit is the largest client message accepted, in bytes (default 4 MiB). A larger
	// one closes the session with close code 1009 and ErrMessageTooLarge.
	ReadLimit int

	// OnAuth is called on the net/http goroutine before the upgrade. Its result is
	// available as Session.Value; an error rejects the request with 401. Nil accepts all.
	OnAuth func(ctx context.Context, r *http.Request) (any, error)

	// OnMessage is called for each client message {"topic":..., "data":...} (text or
	// binary frames; messages that are not such JSON are skipped). It runs on a worker
	// goroutine, never concurrently with itself for one session, in the order the messages
	// arrived. It may block (a database call): that holds one worker and pauses reading
	// from this session only. It may call every Server and Session method. data belongs to
	// the callee: it may keep it. ctx carries the upgrade request's values, stays valid for
	// the session's life and is cancelled when the session closes.
	OnMessage func(ctx context.Context, s *Session, topic string, data []byte)

	// OnClose is called exactly once per session after it has closed, after its last
	// OnMessage, on a worker goroutine. err is nil for a clean close (the client's close
	// frame or Session.Close) and otherwise the reason: see the Err variables. The session
	// is already unsubscribed from every topic.
	OnClose func(s *Session, err error)

	// Origins lists the Origin header values allowed to connect ("*" allows all).
	// CheckOrigin, when set, takes precedence. With neither, requests without an Origin
	// header and same-host origins are accepted and cross-origin browser requests get 403.
	Origins []string

	// CheckOrigin decides whether a request's origin is allowed; it overrides Origins.
	CheckOrigin func(r *http.Request) bool

	// IDGenerator returns a new session ID. Default: 32 random lowercase hex characters.
	IDGenerator func() string

	// PingInterval is how long a session may be silent before the server pings it
	// (default 30 s; negative: never ping). Browsers answer pings by themselves.
	PingInterval time.Duration

	// IdleTimeout closes a session (code 1001, ErrTimeout) that sent no frame at all — no
	// message, no pong — for this long (default 60 s; negative: never). Together with
	// PingInterval it finds half-open connections whose peer vanished.
	IdleTimeout time.Duration

	// MaxSessions caps the open sessions; upgrades beyond it are refused with 503 before
	// anything is hijacked (default 0: no cap). Raise ulimit -n to match (docs/tuning.md).
	MaxSessions int

	// MaxWorkers caps the worker goroutines that run OnMessage, OnClose and session reads
	// (default 10000). The pool keeps a few workers per CPU busy and grows beyond that only
	// while every worker is blocked (an OnMessage waiting on a database, say), doubling
	// each millisecond without progress. At the cap, sessions with work wait in a FIFO for
	// a free worker; reading from them pauses meanwhile.
	MaxWorkers int

	// Broker shares published messages with the other nodes of a cluster (see Broker and
	// docs/scaling.md). Nil, the default, keeps them in this process.
	Broker Broker

	// Logger receives the server's operational events: broker connects, disconnects and
	// failures. Default: slog.Default().
	Logger *slog.Logger
}

// withDefaults fills in the defaults; it is the one place they are set.
func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = defaultQueueSize
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = defaultReadLimit
	}
	if o.IDGenerator == nil {
		o.IDGenerator = randomID
	}
	if o.MaxWorkers <= 0 {
		o.MaxWorkers = 10000
	}
	if o.PingInterval == 0 {
		o.PingInterval = defaultPingInterval
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = defaultIdleTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// randomID returns 16 random bytes as 32 lowercase hex characters.
func randomID() string {
	const hex = "0123456789abcdef"
	var b [16]byte
	_, _ = rand.Read(b[:])
	var out [32]byte
	for i, v := range b {
		out[2*i], out[2*i+1] = hex[v>>4], hex[v&0x0f]
	}
	return string(out[:])
}
