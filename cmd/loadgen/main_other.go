//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "loadgen needs Linux: its client fleet reads sockets with epoll and its figures come from /proc")
	os.Exit(1)
}
