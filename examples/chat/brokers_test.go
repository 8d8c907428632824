package main

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	natsbroker "github.com/livepoll/livepoll/broker/nats"
	redisbroker "github.com/livepoll/livepoll/broker/redis"
	"github.com/livepoll/livepoll/internal/browsertest"
	"github.com/livepoll/livepoll/live"
)

// need skips the test when a prerequisite is missing, or fails it under CI=true.
var need = browsertest.Need

// natsCluster joins the nodes through an in-process NATS server, each node on its own
// connection, with the adapter and options main uses.
func natsCluster(t *testing.T) cluster {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	if !s.ReadyForConnections(waitTimeout) {
		t.Fatalf("nats server not ready within %v", waitTimeout)
	}
	return cluster{name: "nats", newBroker: func(t *testing.T) (live.Broker, func(*testing.T, *live.Server)) {
		nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.Timeout(2*time.Second))
		if err != nil {
			t.Fatalf("nats connect: %v", err)
		}
		t.Cleanup(nc.Close)
		settle := func(t *testing.T, _ *live.Server) {
			// The server has handled every publish sent before its answer to the flush.
			if err := nc.FlushTimeout(waitTimeout); err != nil {
				t.Fatalf("nats flush: %v", err)
			}
		}
		return natsbroker.New(nc, natsbroker.Options{Prefix: "chat"}), settle
	}}
}

// redisCluster joins the nodes through a redis-server process of the test's own. Without
// the binary the test is skipped, or fails under CI=true (.ci/setup installs it).
func redisCluster(t *testing.T) cluster {
	t.Helper()
	addr := startRedis(t)
	return cluster{name: "redis", newBroker: func(t *testing.T) (live.Broker, func(*testing.T, *live.Server)) {
		client := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second})
		t.Cleanup(func() { client.Close() })
		b := redisbroker.New(client, redisbroker.Options{Prefix: "chat:"})
		settle := func(t *testing.T, srv *live.Server) {
			// The broker publishes from a queue: wait until Redis has taken all of it.
			published := srv.Stats().Broker.Published
			waitFor(t, "redis to take the node's messages", func() bool {
				st := b.Stats()
				return st.Sent+st.Lost >= published
			})
			if lost := b.Stats().Lost; lost > 0 {
				t.Fatalf("redis lost %d messages", lost)
			}
		}
		return b, settle
	}}
}

// startRedis runs redis-server on a free loopback port until the test ends and returns
// its address. A port taken by someone else between the choice and the start is retried.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	need(t, err == nil, "redis-server is not on PATH (%v): apt-get install redis-server", err)
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--loglevel", "warning")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		exited := make(chan struct{})
		go func() {
			_ = cmd.Wait()
			close(exited)
		}()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		switch err := waitRedis(addr, exited); {
		case err == nil:
			t.Cleanup(stop)
			return addr
		case err == errRedisExited && attempt < 5:
			t.Logf("redis-server on port %d exited (port taken?), retrying:\n%s", port, out.String())
		default:
			stop()
			t.Fatalf("redis-server on %s: %v\n%s", addr, err, out.String())
		}
	}
}

type redisStartError string

func (e redisStartError) Error() string { return string(e) }

const errRedisExited = redisStartError("redis-server exited")

// waitRedis pings addr until it answers, the process exits or waitTimeout passes.
func waitRedis(addr string, exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(waitTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errRedisExited
		default:
		}
		if time.Now().After(deadline) {
			return redisStartError("not answering after " + waitTimeout.String() + ": " + err.Error())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestOpenBroker: -broker as main handles it: refused values, and two nodes on each
// kind of broker URL chatting through it.
func TestOpenBroker(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"ftp://127.0.0.1:21", "127.0.0.1:4222", "nats://127.0.0.1:" + strconv.Itoa(freePort(t)), "redis://127.0.0.1:" + strconv.Itoa(freePort(t))} {
		if b, _, err := openBroker(bad); err == nil || b != nil {
			t.Errorf("openBroker(%q) = %v, %v; want an error", bad, b, err)
		}
	}
	if b, closeConn, err := openBroker(""); err != nil || b != nil {
		t.Errorf(`openBroker("") = %v, %v; want no broker`, b, err)
	} else {
		closeConn()
	}

	for _, kind := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"nats", func(t *testing.T) string {
			s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
			if err != nil {
				t.Fatal(err)
			}
			s.Start()
			t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
			if !s.ReadyForConnections(waitTimeout) {
				t.Fatal("nats server not ready")
			}
			return s.ClientURL()
		}},
		{"redis", func(t *testing.T) string { return "redis://" + startRedis(t) }},
	} {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			url := kind.url(t)
			nodes := cluster{name: kind.name, newBroker: func(t *testing.T) (live.Broker, func(*testing.T, *live.Server)) {
				b, closeConn, err := openBroker(url)
				if err != nil {
					t.Fatalf("openBroker(%q): %v", url, err)
				}
				t.Cleanup(closeConn)
				return b, func(*testing.T, *live.Server) {}
			}}.start(t, 2, noRoster)
			a, b := nodes[0], nodes[1]
			ann := a.dial(t, "ann")
			ann.join("lobby")
			a.waitInterest(t, 1)
			bob := b.dial(t, "bob")
			bob.send("join", map[string]string{"room": "lobby"})
			b.waitInterest(t, 1)
			ann.wantEvent("join", "lobby", "bob")
			bob.send("chat", map[string]string{"room": "lobby", "text": "hi from b"})
			if ev := ann.wantEvent("message", "lobby", "bob"); ev.Text != "hi from b" {
				t.Errorf("ann got %+v", ev)
			}
			bob.drop()
			ann.wantEvent("leave", "lobby", "bob")
		})
	}
}
