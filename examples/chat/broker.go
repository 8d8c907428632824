package main

import (
	"fmt"
	"net/url"

	"github.com/livepoll/livepoll/live"
)

// openBroker returns the live.Broker for -broker and what closes its connection once the
// node has shut down; "" is a single node (no broker).
func openBroker(raw string) (live.Broker, func(), error) {
	if raw == "" {
		return nil, func() {}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("-broker: %v", err)
	}
	switch u.Scheme {
	case "nats", "redis", "rediss":
		return nil, nil, fmt.Errorf("-broker %s: this build has no %s adapter yet", raw, u.Scheme)
	}
	return nil, nil, fmt.Errorf("-broker %q: want nats://host:port or redis://host:port", raw)
}
