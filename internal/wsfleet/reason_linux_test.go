package wsfleet

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

func TestReason(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{&CloseError{Code: 1008, Reason: "policy"}, "close_1008"},
		{&CloseError{}, "close_none"},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), "reset"},
		{&WriteError{Err: syscall.ECONNRESET}, "reset"},
		{syscall.EPIPE, "reset"},
		{&WriteError{Err: syscall.EPIPE}, "write_error"},
		{&WriteError{Err: fmt.Errorf("blocked: %w", ErrWriteBlocked)}, "timeout"},
		{errEOF, "eof"},
		{ErrCloseTimeout, "close_timeout"},
		{fmt.Errorf("%w: masked", ErrProtocol), "protocol"},
		{errors.New("something"), "other"},
	}
	for _, tc := range cases {
		if got := Reason(tc.err); got != tc.want {
			t.Errorf("Reason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
