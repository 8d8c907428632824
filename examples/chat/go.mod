module github.com/livepoll/livepoll/examples/chat

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/livepoll/livepoll v0.0.0
	golang.org/x/text v0.43.0
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/ws v1.5.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/livepoll/livepoll => ../..
