package live

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// wssDial dials url with gorilla over TLS limited to version (0: any).
func wssDial(t testing.TB, url string, client *tls.Config, version uint16) *websocket.Conn {
	t.Helper()
	cfg := client.Clone()
	if version != 0 {
		cfg.MinVersion, cfg.MaxVersion = version, version
	}
	d := websocket.Dialer{TLSClientConfig: cfg, HandshakeTimeout: waitTimeout}
	c, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// An echo over wss with gorilla, TLS 1.2 and 1.3, small and 1 MiB messages.
func TestServeTLSEcho(t *testing.T) {
	for _, v := range []struct {
		name    string
		version uint16
	}{{"TLS1.2", tls.VersionTLS12}, {"TLS1.3", tls.VersionTLS13}} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			srv := New(Options{OnMessage: func(_ context.Context, s *Session, topic string, data []byte) {
				s.Send(Message{Topic: topic, Data: data})
			}})
			url, client := serveTLS(t, srv)
			c := wssDial(t, url, client, v.version)
			for _, size := range []int{5, 200, 20 << 10, 1 << 20} {
				data := `"` + strings.Repeat("x", size) + `"`
				send(t, c, `{"topic":"echo","data":`+data+`}`)
				if _, m := readMsg(t, c); m != `{"topic":"echo","data":`+data+`}` {
					t.Fatalf("%d bytes: echo came back as %d bytes", size, len(m))
				}
			}
			_ = time.Second
		})
	}
}
