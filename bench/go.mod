module github.com/livepoll/livepoll/bench

go 1.26.0

require (
	github.com/go-mizu/mizu v0.5.26
	github.com/gobwas/ws v1.5.0
	github.com/gorilla/websocket v1.5.3
	github.com/livepoll/livepoll v0.0.0-00010101000000-000000000000
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/livepoll/livepoll => ../
