//go:build !linux

package kmem

import "errors"

// Read is not supported on this system.
func Read() (Snapshot, error) {
	return Snapshot{}, errors.New("kmem: kernel socket memory is read from Linux's /proc only")
}

// ReadNet is not supported on this system.
func ReadNet() (Net, error) {
	return Net{}, errors.New("kmem: drop counters are read from Linux's /proc only")
}
