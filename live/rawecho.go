package live

import (
	"net/http"

	"github.com/livepoll/livepoll/internal/rawecho"
)

func init() {
	rawecho.New = func(readLimit int) rawecho.Server {
		srv := New(Options{
			ReadLimit:   readLimit,
			QueueSize:   1 << 16,
			CheckOrigin: func(*http.Request) bool { return true },
		})
		srv.echo = true
		return srv
	}
}
