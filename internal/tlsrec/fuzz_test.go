package tlsrec

import (
	"bytes"
	"testing"
)

// FuzzOpen feeds arbitrary bytes, split at an arbitrary point, to a server Conn of an
// arbitrary suite whose keys the seeds were sealed with. Open must not panic, must give
// the same plaintext and end whatever the split, must never return more plaintext than
// it was given, and must hold no buffer once the read side has ended.
func FuzzOpen(f *testing.F) {
	for i, s := range suites {
		_, client, _ := fixedPair(f, s)
		stream, _ := clientStream(client)
		f.Add(uint8(i), uint16(len(stream)/2), stream)
		for _, tc := range protocolCases {
			if s.tls13 && !tc.tls13 || !s.tls13 && !tc.tls12 {
				continue
			}
			_, client, _ := fixedPair(f, s)
			in := tc.input(client)
			f.Add(uint8(i), uint16(len(in)/3), in)
		}
	}
	f.Add(uint8(0), uint16(3), []byte{23, 3, 3, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, suiteIndex uint8, split uint16, in []byte) {
		s := suites[int(suiteIndex)%len(suites)]
		_, _, again := fixedPair(t, s)
		at := int(split) % (len(in) + 1)

		whole := again()
		gotWhole, errWhole := whole.Open(nil, append([]byte(nil), in...))
		parts := again()
		cp := append([]byte(nil), in...)
		gotParts, errParts := parts.Open(nil, cp[:at])
		if errParts == nil {
			gotParts, errParts = parts.Open(gotParts, cp[at:])
		}
		if !bytes.Equal(gotWhole, gotParts) || errString(errWhole) != errString(errParts) {
			t.Fatalf("split at %d: %q/%v, whole: %q/%v", at, gotParts, errParts, gotWhole, errWhole)
		}
		if len(gotWhole) > len(in) {
			t.Fatalf("%d bytes of plaintext from %d of input", len(gotWhole), len(in))
		}
		for _, c := range []*Conn{whole, parts} {
			if c.readErr != nil && c.partial != nil {
				t.Fatal("a buffer is held after the end")
			}
			c.Release()
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
