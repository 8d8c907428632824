package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livepoll/livepoll/internal/brokertest"
	"github.com/livepoll/livepoll/internal/leakcheck"
	"github.com/livepoll/livepoll/live"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// redisServer is a redis-server process on a loopback port that stays the same across
// Stop and Start. Nothing is persisted.
type redisServer struct {
	bin    string
	dir    string
	port   int
	served bool // the port has been ours: a restart must keep it

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has exited and been reaped
}

// startRedis runs redis-server for the test. Without the binary the test is skipped, and
// fails under CI=true, where .ci/setup installs it.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not installed (.ci/setup installs Debian's redis-server)")
		}
		t.Skip("redis-server is not on PATH: apt-get install redis-server to run the Redis broker tests")
	}
	rs := &redisServer{bin: bin, dir: t.TempDir()}
	rs.Start(t)
	t.Cleanup(func() { rs.Stop(t) })
	return rs
}

// freePort returns a free loopback port below the kernel's ephemeral range (32768 and up
// by default). A test that restarts redis-server on the same port leaves it unbound
// meanwhile, and the broker keeps dialing it: with an ephemeral port, one of those dials
// may get the port itself as its source and connect to itself (TCP simultaneous open),
// holding the port, and redis-server then fails with "Address already in use".
func freePort(t *testing.T) int {
	t.Helper()
	for range 200 {
		port := 10000 + rand.IntN(20000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free loopback port in 10000-29999")
	return 0
}

func (rs *redisServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(rs.port) }

var errExited = errors.New("redis-server exited")

// Start runs redis-server and waits until it answers. The first time, a port another
// process took between choosing and binding it is replaced by a new one.
func (rs *redisServer) Start(t *testing.T) {
	t.Helper()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.cmd != nil {
		t.Fatal("redis-server already running")
	}
	for attempt := 1; ; attempt++ {
		if !rs.served {
			rs.port = freePort(t)
		}
		err := rs.run()
		if err == nil {
			rs.served = true
			return
		}
		if rs.served || attempt == 3 || !errors.Is(err, errExited) {
			t.Fatal(err)
		}
	}
}

func (rs *redisServer) run() error {
	cmd := exec.Command(rs.bin, "--port", strconv.Itoa(rs.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", rs.dir, "--loglevel", "warning")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	c := redis.NewClient(&redis.Options{Addr: rs.Addr(), MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(brokertest.Wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			rs.cmd, rs.exited = cmd, exited
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%w on port %d: %s", errExited, rs.port, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server on port %d not answering after %v: %v\n%s", rs.port, brokertest.Wait, err, out.String())
		}
	}
}

// Stop kills redis-server by its PID (SIGKILL: no goodbye to the clients) and reaps it.
func (rs *redisServer) Stop(t *testing.T) {
	rs.mu.Lock()
	cmd, exited := rs.cmd, rs.exited
	rs.cmd = nil
	rs.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		<-exited
	}
}

// client opens a client for a node; it is closed when the test ends (after the nodes,
// which were started later).
func (rs *redisServer) client(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: rs.Addr(), DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// subscribers asks Redis how many subscribers channel has.
func (rs *redisServer) subscribers(t *testing.T, channel string) int {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: rs.Addr(), MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := c.PubSubNumSub(ctx, channel).Result()
	if err != nil {
		return -1
	}
	return int(n[channel])
}

func harness(t *testing.T) brokertest.Harness {
	rs := startRedis(t)
	channel := New(nil, Options{}).Channel
	return brokertest.Harness{
		NewBroker: func(t *testing.T) live.Broker {
			return New(rs.client(t), Options{Logger: quiet()})
		},
		Interest: func(t *testing.T, topic string) int { return rs.subscribers(t, channel(topic)) },
		Stop:     rs.Stop,
		Start:    rs.Start,
	}
}

func TestClusterDelivery(t *testing.T) { brokertest.RunDelivery(t, harness(t)) }
func TestClusterInterest(t *testing.T) { brokertest.RunInterest(t, harness(t)) }
func TestClusterOutage(t *testing.T)   { brokertest.RunOutage(t, harness(t)) }
func TestClusterTopics(t *testing.T)   { brokertest.RunTopics(t, harness(t)) }

// Redis sends a node's publishes back to it; the broker drops them by the node ID and
// counts them.
func TestEchoesDropped(t *testing.T) {
	rs := startRedis(t)
	ba := New(rs.client(t), Options{Logger: quiet()})
	a := brokertest.NewNode(t, "A", ba)
	b := brokertest.NewNode(t, "B", New(rs.client(t), Options{Logger: quiet()}))
	a1 := a.Client(t, "a1", "t")
	b1 := b.Client(t, "b1", "t")
	brokertest.Eventually(t, "interest", func() bool { return rs.subscribers(t, ba.Channel("t")) == 2 })
	a.Srv.Publish("t", []byte(`1`))
	a1.Expect(t, "t", `1`)
	b1.Expect(t, "t", `1`)
	b.Srv.Publish("t", []byte(`2`))
	a1.Expect(t, "t", `2`)
	b1.Expect(t, "t", `2`)
	a1.Quiet(t, 50*time.Millisecond)
	brokertest.Eventually(t, "the echo counted", func() bool { return ba.Stats().Echoes == 1 })
	if st := ba.Stats(); st.Sent != 1 || st.Lost != 0 {
		t.Fatalf("stats %+v, want 1 sent, none lost", st)
	}
}

// Other programs may publish JSON to a topic's channel; it reaches the subscribers. Tagged
// payloads too short to carry a node ID are dropped and counted.
func TestForeignPublisher(t *testing.T) {
	rs := startRedis(t)
	br := New(rs.client(t), Options{Prefix: "app/", Logger: quiet()})
	n := brokertest.NewNode(t, "A", br)
	c := n.Client(t, "c", "room *1")
	if br.Channel("room *1") != "app/room *1" {
		t.Fatalf("channel %q", br.Channel("room *1"))
	}
	brokertest.Eventually(t, "interest", func() bool { return rs.subscribers(t, "app/room *1") == 1 })
	other := rs.client(t)
	ctx := context.Background()
	other.Publish(ctx, "app/room *1", "#short")
	other.Publish(ctx, "app/room *1", "not json")
	other.Publish(ctx, "app/room *1", `{"from":"outside"}`)
	c.Expect(t, "room *1", `{"from":"outside"}`)
	if st := br.Stats(); st.Malformed != 1 {
		t.Fatalf("stats %+v, want 1 malformed", st)
	}
}

// While Redis is away Publish fails at once, without queueing. Interest changes are
// recorded and in place at Redis by the time the node reports the connection back.
func TestWhileDown(t *testing.T) {
	rs := startRedis(t)
	br := New(rs.client(t), Options{HealthCheck: time.Second, Logger: quiet()})
	n := brokertest.NewNode(t, "A", br)
	if err := br.Subscribe("gone"); err != nil {
		t.Fatal(err)
	}
	rs.Stop(t)
	brokertest.Eventually(t, "disconnect", func() bool { return !n.Srv.Stats().Broker.Connected })
	began := time.Now()
	for range 1000 {
		if err := br.Publish("t", []byte(`1`)); !errors.Is(err, ErrNotConnected) {
			t.Fatalf("Publish while down: %v", err)
		}
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("1000 failing publishes took %v", d)
	}
	if st := br.Stats(); st.Queued != 0 {
		t.Fatalf("%d queued while down", st.Queued)
	}
	for _, err := range []error{br.Subscribe("t"), br.Unsubscribe("gone")} {
		if err != nil {
			t.Fatalf("interest change while down: %v", err)
		}
	}
	rs.Start(t)
	brokertest.Eventually(t, "reconnect", func() bool { return n.Srv.Stats().Broker.Connected })
	if got, gone := rs.subscribers(t, "livepoll:t"), rs.subscribers(t, "livepoll:gone"); got != 1 || gone != 0 {
		t.Fatalf("when reported connected: %d subscribers of t, %d of gone, want 1 and 0", got, gone)
	}
}

// A node started while Redis is down says so, serves locally, and connects when Redis
// comes up.
func TestStartWhileDown(t *testing.T) {
	rs := startRedis(t)
	rs.Stop(t)
	n := brokertest.NewNode(t, "A", New(rs.client(t), Options{HealthCheck: time.Second, Logger: quiet()}))
	if n.Srv.Stats().Broker.Connected {
		t.Fatal("connected while Redis is down")
	}
	if !strings.Contains(n.Log.String(), "broker start failed") {
		t.Fatalf("log:\n%s", n.Log.String())
	}
	c := n.Client(t, "c", "t")
	n.Srv.Publish("t", []byte(`"local"`))
	c.Expect(t, "t", `"local"`)
	rs.Start(t)
	brokertest.Eventually(t, "connected", func() bool { return n.Srv.Stats().Broker.Connected })
	brokertest.Eventually(t, "interest restored", func() bool { return rs.subscribers(t, "livepoll:t") == 1 })
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// An error answer on the subscription connection (a channel the ACL forbids) is logged by
// the broker and does not count as a lost connection; other topics go on working. (After
// a reconnect go-redis resubscribes all channels in one command, which Redis refuses
// whole: the broker's user needs every channel under the prefix, as the docs say.)
func TestRefusedSubscription(t *testing.T) {
	rs := startRedis(t)
	admin := rs.client(t)
	ctx := context.Background()
	if err := admin.Do(ctx, "ACL", "SETUSER", "limited", "on", ">secret", "resetchannels", "&livepoll:ok*", "+@all", "~*").Err(); err != nil {
		t.Skipf("ACL SETUSER: %v", err)
	}
	client := redis.NewClient(&redis.Options{Addr: rs.Addr(), Username: "limited", Password: "secret"})
	t.Cleanup(func() { client.Close() })
	var log brokertest.SyncBuffer
	br := New(client, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	a := brokertest.NewNode(t, "A", br)
	a.Client(t, "denied", "forbidden")
	ok := a.Client(t, "ok", "ok")
	brokertest.Eventually(t, "the refusal logged", func() bool { return strings.Contains(log.String(), "refused") })
	brokertest.Eventually(t, "interest in ok", func() bool { return rs.subscribers(t, "livepoll:ok") == 1 })
	admin.Publish(ctx, "livepoll:ok", `"fine"`)
	ok.Expect(t, "ok", `"fine"`)
	if st := a.Srv.Stats().Broker; !st.Connected || st.Disconnects != 0 {
		t.Fatalf("broker stats %+v, want connected, no disconnects", st)
	}
}
