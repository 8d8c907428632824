module github.com/livepoll/livepoll

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/go-mizu/mizu v0.5.26
	github.com/gobwas/ws v1.5.0
	github.com/google/pprof v0.0.0-20261105003125-4bf881d7fb0b
	github.com/gorilla/websocket v1.5.3
	golang.org/x/sys v0.49.0
)

require github.com/gobwas/httphead v0.1.0 // indirect
