package live

import "strings"

// Negotiation of permessage-deflate (RFC 7692 section 7.1). The server always answers
// with no context takeover in both directions, so no flate state lives between messages:
// an idle session holds none, and Publish can compress a message once for every
// subscriber.
//
//   - server_no_context_takeover, client_no_context_takeover: accepted, and answered
//     whether offered or not (sections 7.1.1.1 and 7.1.1.2 allow both in any response).
//   - client_max_window_bits, with or without a value: accepted and not answered; the
//     server inflates with a 32 KiB window, which takes any client window.
//   - server_max_window_bits=N: accepted and answered with N. With no context takeover a
//     message of at most 2^N bytes has no back-reference as long as 2^N, so the server
//     compresses only messages of at most 2^N bytes for such a session; larger ones go
//     plain (at N = 15, every size).
//   - an unknown parameter, a repeated one, a value where none belongs, or a window size
//     outside 8..15 declines that offer (section 7.1: the server may decline any offer);
//     the next offer is tried, and with none left the connection goes on uncompressed.

const extDeflate = "permessage-deflate"

// deflateAnswer is the part of the response every accepted offer gets.
const deflateAnswer = extDeflate + "; server_no_context_takeover; client_no_context_takeover"

// maxWindowBits is the window the server compresses within when the client sets none:
// 32 KiB, deflate's largest.
const maxWindowBits = 15

// negotiateDeflate reads the Sec-WebSocket-Extensions offers of a request, in order, and
// accepts the first permessage-deflate offer it can honour. It returns the header value
// to answer with and the window bits the server's messages must fit (8..15), or "" and 0
// when no offer was accepted.
func negotiateDeflate(headers []string) (answer string, bits uint8) {
	for _, h := range headers {
		for _, ext := range splitQuoted(h, ',', false) {
			if bits, ok := acceptDeflateOffer(ext); ok {
				if bits == 0 {
					return deflateAnswer, maxWindowBits
				}
				return deflateAnswer + "; server_max_window_bits=" + string(windowDigits(bits)), bits
			}
		}
	}
	return "", 0
}

// acceptDeflateOffer reads one extension of the header. It reports whether it is a
// permessage-deflate offer the server accepts, and the server_max_window_bits it asks
// for (0: none).
func acceptDeflateOffer(ext string) (serverBits uint8, ok bool) {
	parts := splitQuoted(ext, ';', true)
	if len(parts) == 0 || !strings.EqualFold(strings.TrimSpace(parts[0]), extDeflate) {
		return 0, false
	}
	const (
		seenServerNoContext = 1 << iota
		seenClientNoContext
		seenServerBits
		seenClientBits
	)
	seen := 0
	for _, p := range parts[1:] {
		name, value, hasValue, valid := splitParam(p)
		if !valid {
			return 0, false
		}
		var bit int
		switch strings.ToLower(name) {
		case "server_no_context_takeover":
			bit = seenServerNoContext
			if hasValue {
				return 0, false
			}
		case "client_no_context_takeover":
			bit = seenClientNoContext
			if hasValue {
				return 0, false
			}
		case "server_max_window_bits":
			bit = seenServerBits
			b, ok := parseWindowBits(value)
			if !hasValue || !ok {
				return 0, false
			}
			serverBits = b
		case "client_max_window_bits":
			bit = seenClientBits
			if _, ok := parseWindowBits(value); hasValue && !ok {
				return 0, false
			}
		default:
			return 0, false
		}
		if seen&bit != 0 {
			return 0, false
		}
		seen |= bit
	}
	return serverBits, true
}

// parseWindowBits reads a window size as RFC 7692 section 7.1.2 spells it: a decimal
// from 8 to 15 without leading zeroes.
func parseWindowBits(v string) (uint8, bool) {
	switch {
	case len(v) == 1 && v[0] >= '8' && v[0] <= '9':
		return v[0] - '0', true
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		return 10 + v[1] - '0', true
	}
	return 0, false
}

func windowDigits(bits uint8) []byte {
	if bits < 10 {
		return []byte{'0' + bits}
	}
	return []byte{'1', '0' + bits - 10}
}

// splitParam splits an extension parameter, token [ "=" ( token / quoted-string ) ], and
// unquotes its value. valid is false when the name or the value is not well formed.
func splitParam(p string) (name, value string, hasValue, valid bool) {
	name, value, hasValue = strings.Cut(p, "=")
	name = strings.TrimSpace(name)
	if !isToken(name) {
		return "", "", false, false
	}
	if !hasValue {
		return name, "", false, true
	}
	value = strings.TrimSpace(value)
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		var b strings.Builder
		for i := 1; i < len(value)-1; i++ {
			c := value[i]
			if c == '\\' && i+1 < len(value)-1 {
				i++
				c = value[i]
			} else if c == '"' || c == '\\' {
				return "", "", false, false
			}
			b.WriteByte(c)
		}
		// RFC 6455 section 9.1: a quoted value must still be a token once unquoted.
		value = b.String()
	}
	if !isToken(value) {
		return "", "", false, false
	}
	return name, value, true, true
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// splitQuoted splits s at every sep outside a quoted string and trims spaces. Empty
// elements are dropped unless keepEmpty is set: RFC 9110's list rule allows them between
// commas, and an empty parameter between semicolons is malformed.
func splitQuoted(s string, sep byte, keepEmpty bool) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			switch c := s[i]; {
			case c == '\\' && quoted:
				i++
				continue
			case c == '"':
				quoted = !quoted
				continue
			case c != sep || quoted:
				continue
			}
		}
		if e := strings.TrimSpace(s[start:min(i, len(s))]); e != "" || keepEmpty {
			out = append(out, e)
		}
		start = i + 1
	}
	return out
}
