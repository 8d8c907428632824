module github.com/livepoll/livepoll/bench

go 1.26.0

require (
	github.com/go-mizu/mizu v0.5.26
	github.com/gobwas/ws v1.5.0
	github.com/gorilla/websocket v1.5.3
	github.com/lesismal/nbio v1.6.7
	github.com/livepoll/livepoll v0.0.0-00010101000000-000000000000
	github.com/lxzan/gws v1.8.9
	golang.org/x/image v0.47.0
)

require (
	github.com/dolthub/maphash v0.1.0 // indirect
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/klauspost/compress v1.17.9 // indirect
	github.com/lesismal/llib v1.2.2 // indirect
	golang.org/x/crypto v0.0.0-20210513122933-cd7d49e622d5 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/livepoll/livepoll => ../
