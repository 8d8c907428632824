//go:build !linux

package uring

import (
	"errors"
	"math"
)

// MaxBufs is the most buffers one send carries.
const MaxBufs = 8

// NotSent is the result Submit gives a send the kernel never took.
const NotSent = math.MinInt32

// Ring is unavailable on this platform.
type Ring struct{}

// New reports that io_uring is Linux only.
func New(size int) (*Ring, error) { return nil, errors.New("uring: io_uring is Linux only") }

// Close does nothing.
func (r *Ring) Close() error { return nil }

// Size is 0.
func (r *Ring) Size() int { return 0 }

// Prepare always reports a full ring.
func (r *Ring) Prepare(fd int, bufs [][]byte) int { return -1 }

// PrepareRecv always reports a full ring.
func (r *Ring) PrepareRecv(fd int, buf []byte) int { return -1 }

// Submit does nothing.
func (r *Ring) Submit(res []int32) error { return nil }

// CheckNowait reports that io_uring is Linux only.
func (r *Ring) CheckNowait() error { return errors.New("uring: io_uring is Linux only") }

// CheckRecvNowait reports that io_uring is Linux only.
func (r *Ring) CheckRecvNowait() error { return errors.New("uring: io_uring is Linux only") }
