// Package proc is the process plumbing shared by cmd/loadgen and the bench programs:
// descriptor limits, memory and CPU of processes read from /proc, and child processes
// that die with their parent. Linux only; on other systems the package is empty.
package proc
