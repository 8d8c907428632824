// Package pool holds the execution and memory pools that livepoll's event loop runs on.
//
// A Pool is a set of worker goroutines that grows on demand up to a cap and shrinks when
// idle. A Signal lets one owner (a WebSocket session) have its work run on the Pool in
// order and one piece at a time: raising a signal while the owner is already scheduled only
// records the work, and the running owner picks it up before it lets go.
//
// Get/Put lend byte slices from size classes, and Shared is a reference-counted buffer so a
// frame encoded once can be queued on many connections and returned to its pool when the
// last one has written it.
package pool
