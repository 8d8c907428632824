//go:build !linux && !darwin && !freebsd && !netbsd && !openbsd && !dragonfly

package poller

import (
	"errors"
	"testing"
)

func TestNewUnsupported(t *testing.T) {
	p, err := New()
	if p != nil || !errors.Is(err, ErrUnsupported) {
		t.Fatalf("New() = %v, %v; want nil, ErrUnsupported", p, err)
	}
}
