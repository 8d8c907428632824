module github.com/livepoll/livepoll/bench

go 1.26.0

require github.com/go-mizu/mizu v0.5.26

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/ws v1.5.0 // indirect
)

replace github.com/livepoll/livepoll => ../
