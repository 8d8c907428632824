// Command loadgen drives a WebSocket pub/sub server with many connections and reports
// what it saw: connections reached and the connect rate, errors by kind, latency
// percentiles, deliveries per second, messages lost and connections the server closed
// (by reason), and the server's memory, goroutines and descriptors per connection,
// with the kernel's socket memory beside them, the server's and its own CPU per delivery
// during the load phase and, with -heap-profile, the server's top allocation sites.
//
// With no -url it starts its own livepoll server (this program re-executed as a child
// process), so on a fresh machine
//
//	go run ./cmd/loadgen -conns 10000
//
// connects 10,000 clients, subscribes them to 100 topics, publishes timestamped
// messages at 200/s for 10 s and prints the report. With -url it targets any server
// speaking the live envelope and the app protocol of bench/servers (subscribe, publish,
// echo). Scenarios: idle, subscribe, publish, echo (open loop at -rate, or closed loop
// with -inflight N requests in flight per connection), churn, and abuse (echo beside
// flooders, non-readers, slow readers, churners and ping flooders). Connections are spread over
// loopback source addresses and, past one process's descriptor limit, over worker
// processes it starts itself. docs/loadgen.md has the flags, the report fields and the
// limits. Linux only.
package main
