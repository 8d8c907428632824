package frame_test

import (
	"errors"
	"fmt"

	"github.com/gobwas/ws"
	"github.com/livepoll/livepoll/frame"
)

// printer is a Handler that prints what it gets.
type printer struct{}

func (printer) Message(op ws.OpCode, payload []byte) error {
	fmt.Printf("message op=%d %q\n", op, payload)
	return nil
}

func (printer) Control(op ws.OpCode, payload []byte) error {
	fmt.Printf("control op=%d %q\n", op, payload)
	return nil
}

// A frame split over two socket reads: the first Feed keeps the partial
// frame, the second completes it.
func ExampleReader_Feed() {
	// "Hello" from a client, masked (RFC 6455 section 5.7), then a ping.
	wire := []byte{
		0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
		0x89, 0x80, 0x01, 0x02, 0x03, 0x04,
	}
	var r frame.Reader
	defer r.Release()
	const limit = 4 << 20
	if err := r.Feed(wire[:8], limit, printer{}); err != nil {
		fmt.Println(err)
	}
	fmt.Println("buffered:", r.Buffered(), "partial:", r.Partial())
	if err := r.Feed(wire[8:], limit, printer{}); err != nil {
		fmt.Println(err)
	}
	fmt.Println("buffered:", r.Buffered(), "partial:", r.Partial())
	// Output:
	// buffered: 2 partial: true
	// message op=1 "Hello"
	// control op=9 ""
	// buffered: 0 partial: false
}

func ExampleAppendFrame() {
	out := frame.AppendFrame(nil, ws.OpText, []byte("Hello"))
	fmt.Printf("% x\n", out)
	out = frame.AppendClose(out[:0], ws.StatusNormalClosure, "bye")
	fmt.Printf("% x\n", out)
	// Output:
	// 81 05 48 65 6c 6c 6f
	// 88 05 03 e8 62 79 65
}

// A protocol violation carries the close code to send back.
func ExampleError() {
	var r frame.Reader
	defer r.Release()
	unmasked := []byte{0x81, 0x02, 'h', 'i'}
	err := r.Feed(unmasked, 0, printer{})
	fmt.Println(err)
	var e *frame.Error
	if errors.As(err, &e) {
		fmt.Printf("%x\n", frame.AppendClose(nil, e.Code, e.Reason))
	}
	// Output:
	// frame: protocol error (1002): unmasked client frame
	// 881703ea756e6d61736b656420636c69656e74206672616d65
}
