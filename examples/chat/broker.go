package main

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	natsbroker "github.com/livepoll/livepoll/broker/nats"
	redisbroker "github.com/livepoll/livepoll/broker/redis"
	"github.com/livepoll/livepoll/live"
)

// openBroker returns the live.Broker for -broker and what closes its connection once the
// node has shut down (the adapters leave the connection to the program); "" is a single
// node. The broker must be reachable at start, so a wrong address fails at once; later
// outages are ridden out (the connection reconnects, live logs it).
func openBroker(raw string) (live.Broker, func(), error) {
	if raw == "" {
		return nil, func() {}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("-broker: %v", err)
	}
	switch u.Scheme {
	case "nats", "tls":
		nc, err := nats.Connect(raw, nats.Name("livepoll chat"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, nil, fmt.Errorf("-broker %s: %w", raw, err)
		}
		closeConn := func() {
			_ = nc.FlushTimeout(2 * time.Second) // the last leaves, published at shutdown
			nc.Close()
		}
		return natsbroker.New(nc, natsbroker.Options{Prefix: "chat"}), closeConn, nil
	case "redis", "rediss":
		opts, err := redis.ParseURL(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("-broker %s: %w", raw, err)
		}
		client := redis.NewClient(opts)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := client.Ping(ctx).Err(); err != nil {
			client.Close()
			return nil, nil, fmt.Errorf("-broker %s: %w", raw, err)
		}
		return redisbroker.New(client, redisbroker.Options{Prefix: "chat:"}), func() { client.Close() }, nil
	}
	return nil, nil, fmt.Errorf("-broker %q: want nats://host:port or redis://host:port", raw)
}
