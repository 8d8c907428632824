package tlsrec

import (
	"bytes"
	"encoding/hex"
	"io"
)

// keyCapture is the KeyLogWriter of one handshake's Config. crypto/tls writes each secret
// to it as an NSS key log line ("LABEL <client random> <secret>\n", one line per Write,
// under its own lock); the traffic secrets are kept for the takeover and every line goes
// on to the user's KeyLogWriter, if any.
type keyCapture struct {
	h    *Handshake
	next io.Writer
}

func (k keyCapture) Write(line []byte) (int, error) {
	if label, random, secret, ok := parseKeyLogLine(line); ok {
		k.h.keyLogged(label, random, secret)
	}
	if k.next != nil {
		return k.next.Write(line)
	}
	return len(line), nil
}

// parseKeyLogLine splits an NSS key log line; random stays hex.
func parseKeyLogLine(line []byte) (label string, random, secret []byte, ok bool) {
	l, rest, _ := bytes.Cut(bytes.TrimSpace(line), []byte(" "))
	random, secretHex, _ := bytes.Cut(rest, []byte(" "))
	secret = make([]byte, hex.DecodedLen(len(secretHex)))
	if _, err := hex.Decode(secret, secretHex); err != nil || len(secret) == 0 || len(secret) > 48 {
		return "", nil, nil, false
	}
	return string(l), random, secret, true
}
