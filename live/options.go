package live

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"time"
)

const (
	defaultQueueSize  = 256
	defaultQueueBytes = 4 << 20 // 4 MiB
	defaultReadLimit  = 4 << 20 // 4 MiB

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

	// QueueBytes bounds the same queue in bytes (default 4 MiB): a queued message counts
	// the pooled buffer it holds (its frame rounded up to a power of two), and a published
	// message counts against every session that holds it. A send that finds the queue at
	// QueueBytes closes the session with ErrQueueFull; one message is always accepted
	// into an empty queue, so a session holds at most QueueBytes plus one message. At half
	// of QueueSize or QueueBytes the session stops being read (its client is held back by
	// TCP) until the queue is down to a quarter, so a client that sends requests and does
	// not read the answers pins at most this bound. At most 1 GiB. docs/tuning.md sizes it.
	QueueBytes int

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

	// IdleTimeout closes a session (code 1001, ErrTimeout) from which the server read no
	// frame at all — no message, no pong — for this long (default 60 s; negative: never).
	// Together with PingInterval it finds half-open connections whose peer vanished. The
	// sweeper looks once a second; with pings on, a session is closed only after a ping
	// went unanswered for at least a second, even when that takes it past IdleTimeout. While
	// a session is not read (its queue is above the high-water mark because its client
	// does not read, or its client is over a rate limit) nothing it sends is seen either,
	// so a client that stops reading for IdleTimeout is closed even if it goes on sending.
	IdleTimeout time.Duration

	// MaxSessions caps the open sessions; upgrades beyond it are refused with 503 before
	// anything is hijacked (default 0: no cap). Raise ulimit -n to match (docs/tuning.md).
	MaxSessions int

	// MaxWorkers caps the worker goroutines that run OnMessage, OnClose and session reads
	// (default 10000). The pool keeps a few workers per CPU busy and grows beyond that only
	// while every worker is inside OnMessage or OnClose (waiting on a database, say),
	// doubling each millisecond without a finished task; floods of input never make it
	// grow (a session reads in bounded turns and then goes to the back of the line). At
	// the cap, sessions with work wait in a FIFO for a free worker; reading from them
	// pauses meanwhile.
	MaxWorkers int

	// MessageRate limits each client to this many messages per second (data messages and
	// control frames alike), with bursts of MessageBurst (default: MessageRate, at least
	// 1). 0, the default, is no limit. A client over its limit is not read (TCP holds it
	// back) until its bucket has refilled, or closed under RateLimitClose. The buckets
	// refill on use: no timer or goroutine per session.
	MessageRate  float64
	MessageBurst int

	// ByteRate limits each client to this many bytes per second as read from its socket
	// (frame headers included), with bursts of ByteBurst (default: ByteRate, at least
	// 4 KiB). 0, the default, is no limit. Over the limit, as for MessageRate.
	ByteRate  float64
	ByteBurst int

	// RateLimitClose closes a client that goes over MessageRate or ByteRate (close code
	// 1008, ErrRateLimited) instead of pausing it.
	RateLimitClose bool

	// MaxUpgradeRate caps new sessions per second, with bursts of UpgradeBurst (default:
	// MaxUpgradeRate, at least 1); upgrades over it are answered 503 with Retry-After: 1
	// before anything is hijacked, and counted in Stats.UpgradesThrottled. 0, the default,
	// is no cap. It spreads a reconnect storm instead of paying every handshake at once.
	MaxUpgradeRate float64
	UpgradeBurst   int

	// ShutdownWindow spreads Shutdown's closes over this long, each session at a random
	// moment within it, so that clients which reconnect at once do not all come back in
	// the same second (default 0: all at once). Close ignores it.
	ShutdownWindow time.Duration

	// ShutdownCode is the close code Shutdown and Close send: 1001 going away (the
	// default) or 1012 service restart (a hint to reconnect later; browsers show it as
	// the CloseEvent's code). Other values are replaced by 1001.
	ShutdownCode int

	// Compression negotiates permessage-deflate (RFC 7692) with clients that offer it, as
	// browsers do (default false, as in mizu, which does not compress). Both directions
	// run without context takeover: an idle session holds no compression state, and
	// Publish compresses a message once for all its subscribers that negotiated it; the
	// others get the plain frame. Messages under CompressionMinSize, or that compression
	// would not make smaller, go plain. ReadLimit applies to a compressed client message's
	// inflated size. docs/compression.md has the details and the costs.
	Compression bool

	// CompressionMinSize is the smallest message payload, in bytes, sent compressed to a
	// session that negotiated compression (default 256).
	CompressionMinSize int

	// Broker shares published messages with the other nodes of a cluster (see Broker and
	// docs/scaling.md). Nil, the default, keeps them in this process.
	Broker Broker

	// Logger receives the server's operational events: broker connects, disconnects and
	// failures, handler panics, accept errors. Default: slog.Default().
	Logger *slog.Logger
}

// withDefaults fills in the defaults; it is the one place they are set.
func (o Options) withDefaults() Options {
	if o.QueueSize <= 0 {
		o.QueueSize = defaultQueueSize
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = defaultQueueBytes
	}
	o.QueueBytes = min(o.QueueBytes, maxQueueBytes)
	if o.ReadLimit <= 0 {
		o.ReadLimit = defaultReadLimit
	}
	if o.CompressionMinSize <= 0 {
		o.CompressionMinSize = defaultCompressionMinSize
	}
	if o.MessageRate > 0 && o.MessageBurst <= 0 {
		o.MessageBurst = max(1, int(o.MessageRate))
	}
	if o.ByteRate > 0 && o.ByteBurst <= 0 {
		o.ByteBurst = max(4<<10, int(o.ByteRate))
	}
	if o.MaxUpgradeRate > 0 && o.UpgradeBurst <= 0 {
		o.UpgradeBurst = max(1, int(o.MaxUpgradeRate))
	}
	if o.ShutdownWindow < 0 {
		o.ShutdownWindow = 0
	}
	if o.ShutdownCode != int(statusServiceRestart) {
		o.ShutdownCode = int(statusGoingAway)
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
