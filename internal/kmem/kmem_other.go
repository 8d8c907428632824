//go:build !linux

package kmem

import "errors"

// Read is not supported on this system.
func Read() (Snapshot, error) {
	return Snapshot{}, errors.New("kmem: kernel socket memory is read from Linux's /proc only")
}
