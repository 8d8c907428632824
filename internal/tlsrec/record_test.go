package tlsrec

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"testing"
)

func suiteName(s *suite) string { return tls.CipherSuiteName(s.id) }

func TestSealOpenEverySuite(t *testing.T) {
	sizes := []int{0, 1, 100, maxPlaintext - 1, maxPlaintext, maxPlaintext + 1, 50000}
	for _, s := range suites {
		t.Run(suiteName(s), func(t *testing.T) {
			t.Parallel()
			server, client := pair(t, s)
			for _, n := range sizes {
				msg := bytes.Repeat([]byte{byte(n)}, n)
				// Server to client, into a buffer sized by SealedLen: no growth.
				buf := make([]byte, 0, server.SealedLen(n))
				rec, err := server.Seal(buf, msg)
				if err != nil {
					t.Fatal(err)
				}
				if len(rec) != server.SealedLen(n) || &rec[0] != &buf[:1][0] {
					t.Fatalf("%d bytes: sealed %d, SealedLen %d, or the buffer was not used", n, len(rec), server.SealedLen(n))
				}
				got, err := client.Open(nil, rec)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("%d bytes server→client: %v, %d bytes back", n, err, len(got))
				}
				// Client to server.
				rec, _ = client.Seal(nil, msg)
				got, err = server.Open(nil, rec)
				if err != nil || !bytes.Equal(got, msg) {
					t.Fatalf("%d bytes client→server: %v, %d bytes back", n, err, len(got))
				}
			}
		})
	}
}

// clientStream is what a client may send: data, an empty record, a longer message, a
// KeyUpdate (TLS 1.3), more data, close_notify. want is its application data.
func clientStream(c *Conn) (stream, want []byte) {
	add := func(b []byte) { stream = append(stream, b...) }
	rec, _ := c.Seal(nil, []byte("hello"))
	add(rec)
	add(sealMsg(c, typeApplicationData, nil))
	big := bytes.Repeat([]byte("0123456789abcdef"), 40)
	rec, _ = c.Seal(nil, big)
	add(rec)
	if c.suite.tls13 {
		rec, _ = c.SealKeyUpdate(nil, true)
		add(rec)
	}
	rec, _ = c.Seal(nil, []byte("after"))
	add(rec)
	add(c.SealClose(nil))
	return stream, append(append([]byte("hello"), big...), "after"...)
}

// TestOpenSplitEverywhere feeds the same stream split in two at every byte, and one byte
// at a time: the plaintext, the end and the owed records never depend on the split.
func TestOpenSplitEverywhere(t *testing.T) {
	for _, s := range suites {
		t.Run(suiteName(s), func(t *testing.T) {
			t.Parallel()
			_, client, again := pairAgain(t, s)
			stream, want := clientStream(client)
			check := func(name string, server *Conn, got []byte, err error) {
				t.Helper()
				if err != io.EOF || !bytes.Equal(got, want) {
					t.Fatalf("%s: %v, %d of %d bytes", name, err, len(got), len(want))
				}
				if server.partial != nil {
					t.Fatalf("%s: a buffer is held after the last record", name)
				}
				if !server.Pending() {
					t.Fatalf("%s: no close_notify owed", name)
				}
			}
			for i := 0; i <= len(stream); i++ {
				server := again()
				in := append([]byte(nil), stream...) // Open decrypts in place
				got, err := server.Open(nil, in[:i])
				if err == nil {
					got, err = server.Open(got, in[i:])
				}
				check("split at "+string(rune('0'+i%10)), server, got, err)
			}
			server := again()
			in := append([]byte(nil), stream...)
			var got []byte
			var err error
			for i := range in {
				if got, err = server.Open(got, in[i:i+1]); err != nil {
					break
				}
				if held := server.partial != nil; held != (i+1 < len(in) && !endsRecord(in, i+1)) {
					t.Fatalf("byte %d: buffer held = %v", i, held)
				}
			}
			check("byte by byte", server, got, err)
		})
	}
}

// endsRecord reports whether a record of stream ends exactly at offset n.
func endsRecord(stream []byte, n int) bool {
	for off := 0; off < n; off += headerLen + recordLen(stream[off:]) {
		if off+headerLen+recordLen(stream[off:]) == n {
			return true
		}
	}
	return false
}

// TestKeyUpdateRequested: the client asks; the server's next records are its own
// KeyUpdate(update_not_requested) under the old key, then data under the new one.
func TestKeyUpdateRequested(t *testing.T) {
	for _, s := range suites[:3] {
		t.Run(suiteName(s), func(t *testing.T) {
			server, client := pair(t, s)
			ku, _ := client.SealKeyUpdate(nil, true)
			if _, err := server.Open(nil, ku); err != nil {
				t.Fatal(err)
			}
			if !server.Pending() {
				t.Fatal("no KeyUpdate owed")
			}
			out, err := server.Seal(nil, []byte("under the new key"))
			if err != nil {
				t.Fatal(err)
			}
			got, err := client.Open(nil, out)
			if err != nil || string(got) != "under the new key" {
				t.Fatalf("%q, %v", got, err)
			}
			if client.Pending() {
				t.Fatal("update_not_requested was answered")
			}
			if server.out.seq != 1 || client.in.seq != 1 {
				t.Fatalf("sequence numbers %d, %d after the update", server.out.seq, client.in.seq)
			}
		})
	}
}

// TestSealOpenAllocs: with room in dst, Seal and Open of whole records allocate nothing.
func TestSealOpenAllocs(t *testing.T) {
	for _, s := range suites {
		server, client := pair(t, s)
		msg := make([]byte, 1000)
		out := make([]byte, 0, server.SealedLen(len(msg)))
		in := make([]byte, 0, client.SealedLen(len(msg)))
		plain := make([]byte, 0, len(msg))
		allocs := testing.AllocsPerRun(100, func() {
			out, _ = server.Seal(out[:0], msg)
			in, _ = client.Seal(in[:0], msg)
			plain, _ = server.Open(plain[:0], in)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Seal+Open", suiteName(s), allocs)
		}
		if server.readErr != nil || len(plain) != len(msg) {
			t.Errorf("%s: Open failed: %v", suiteName(s), server.readErr)
		}
	}
}

// TestExpandLabelRFC8448 checks the TLS 1.3 key schedule against RFC 8448, section 3
// (server handshake traffic secret → write key and IV).
func TestExpandLabelRFC8448(t *testing.T) {
	secret := unhex(t, "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
	key := expandLabel(sha256.New, secret, "key", 16)
	iv := expandLabel(sha256.New, secret, "iv", 12)
	if hex.EncodeToString(key) != "3fce516009c21727d0f2e4e86ee403bc" || hex.EncodeToString(iv) != "5d313eb2671276ee13000b30" {
		t.Fatalf("key %x iv %x", key, iv)
	}
}

// TestPRF12 checks the TLS 1.2 PRF (P_SHA256) against the widely used test vector
// posted to the IETF TLS list for RFC 5246.
func TestPRF12(t *testing.T) {
	secret := unhex(t, "9bbe436ba940f017b17652849a71db35")
	seed := unhex(t, "a0ba9f936cda311827a6f796ffd5198c")
	out := prf12(sha256.New, secret, "test label", seed, 100)
	want := "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff70187347b66"
	if hex.EncodeToString(out) != want {
		t.Fatalf("PRF %x", out)
	}
}

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCompact: a compacted Conn makes its AEADs again on use, in both directions,
// across a KeyUpdate and in the middle of a record.
func TestCompact(t *testing.T) {
	for _, s := range suites {
		t.Run(suiteName(s), func(t *testing.T) {
			server, client := pair(t, s)
			exchange := func(msg string) {
				t.Helper()
				rec, err := server.Seal(nil, []byte(msg))
				if err != nil {
					t.Fatal(err)
				}
				if got, err := client.Open(nil, rec); err != nil || string(got) != msg {
					t.Fatalf("server→client %q, %v", got, err)
				}
				rec, _ = client.Seal(nil, []byte(msg))
				if got, err := server.Open(nil, rec); err != nil || string(got) != msg {
					t.Fatalf("client→server %q, %v", got, err)
				}
			}
			exchange("before")
			server.Compact()
			if server.in.aead != nil || server.out.aead != nil {
				t.Fatal("Compact kept an AEAD")
			}
			exchange("after")
			if s.tls13 {
				server.Compact()
				ku, _ := client.SealKeyUpdate(nil, true)
				if _, err := server.Open(nil, ku); err != nil {
					t.Fatal(err)
				}
				server.Compact()
				exchange("after a KeyUpdate")
			}
			rec, _ := client.Seal(nil, []byte("split"))
			if _, err := server.Open(nil, rec[:7]); err != nil {
				t.Fatal(err)
			}
			server.Compact()
			if got, err := server.Open(nil, rec[7:]); err != nil || string(got) != "split" {
				t.Fatalf("%q, %v", got, err)
			}
		})
	}
}

// TestWriteKeyLimit: after 2^24 records under one TLS 1.3 key, Seal moves to the next.
func TestWriteKeyLimit(t *testing.T) {
	for _, s := range suites[:3] {
		server, client := pair(t, s)
		server.out.seq, client.in.seq = keyUpdateAfter-1, keyUpdateAfter-1
		out, _ := server.Seal(nil, []byte("last under the first key"))
		out, _ = server.Seal(out, []byte("first under the next"))
		got, err := client.Open(nil, out)
		if err != nil || string(got) != "last under the first keyfirst under the next" {
			t.Fatalf("%s: %q, %v", suiteName(s), got, err)
		}
		if server.out.seq != 1 || client.in.seq != 1 {
			t.Fatalf("%s: sequence numbers %d, %d: no KeyUpdate", suiteName(s), server.out.seq, client.in.seq)
		}
	}
}
