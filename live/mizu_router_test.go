package live

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-mizu/mizu"
)

// livepoll's Handler mounted on a mizu v0.5.26 router: mizu wraps the ResponseWriter in a
// type with Unwrap and no Hijack, which livepoll reaches through http.ResponseController.
// (mizu's own live answers 500 here: see TestCompareWithMizu.)
func TestMizuRouterMount(t *testing.T) {
	t.Parallel()
	srv := New(Options{
		OnMessage: func(ctx context.Context, s *Session, topic string, data []byte) {
			s.Send(Message{Topic: topic, Data: data})
		},
	})
	app := mizu.New()
	app.Compat.Handle("/compat", srv.Handler())
	app.Mount("/mount", srv.Handler())
	app.Compat.HandleMethod(http.MethodGet, "/method", srv.Handler())
	hs := httptest.NewServer(app)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	base := "ws" + strings.TrimPrefix(hs.URL, "http")
	for _, path := range []string{"/compat", "/mount", "/method"} {
		t.Run(path, func(t *testing.T) {
			c := dial(t, base+path)
			send(t, c, `{"topic":"via`+path+`","data":[1]}`)
			if _, m := readMsg(t, c); m != `{"topic":"via`+path+`","data":[1]}` {
				t.Fatalf("got %s", m)
			}
		})
	}
}
