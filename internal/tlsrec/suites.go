package tlsrec

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// suite is what the record layer needs to know about a negotiated cipher suite: every
// suite taken over is an AEAD, so there are no MAC keys and no CBC padding to get wrong.
type suite struct {
	id     uint16
	tls13  bool
	keyLen int
	// ivLen is the per-direction IV taken from the key schedule: 12 bytes, XORed with the
	// sequence number (TLS 1.3 and ChaCha20-Poly1305 in TLS 1.2, RFC 7905), or 4 bytes of
	// salt before an 8-byte explicit nonce carried in each record (AES-GCM in TLS 1.2,
	// RFC 5288).
	ivLen   int
	newHash func() hash.Hash
	chacha  bool
}

// explicitNonce reports whether records carry the 8-byte explicit nonce of RFC 5288.
func (s *suite) explicitNonce() bool { return !s.tls13 && !s.chacha }

func (s *suite) newAEAD(key []byte) (cipher.AEAD, error) {
	if s.chacha {
		return chacha20poly1305.New(key)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

var suites = []*suite{
	{id: tls.TLS_AES_128_GCM_SHA256, tls13: true, keyLen: 16, ivLen: 12, newHash: sha256.New},
	{id: tls.TLS_AES_256_GCM_SHA384, tls13: true, keyLen: 32, ivLen: 12, newHash: sha512.New384},
	{id: tls.TLS_CHACHA20_POLY1305_SHA256, tls13: true, keyLen: 32, ivLen: 12, newHash: sha256.New, chacha: true},

	{id: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, keyLen: 16, ivLen: 4, newHash: sha256.New},
	{id: tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, keyLen: 16, ivLen: 4, newHash: sha256.New},
	{id: tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, keyLen: 32, ivLen: 4, newHash: sha512.New384},
	{id: tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, keyLen: 32, ivLen: 4, newHash: sha512.New384},
	{id: tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, keyLen: 32, ivLen: 12, newHash: sha256.New, chacha: true},
	{id: tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, keyLen: 32, ivLen: 12, newHash: sha256.New, chacha: true},
}

func suiteByID(id uint16) *suite {
	for _, s := range suites {
		if s.id == id {
			return s
		}
	}
	return nil
}

// TLS12CipherSuites lists the TLS 1.2 cipher suites whose records this package carries.
// The handshake offers no others (the Runner restricts its Config to them), so a client
// that has none of them fails the handshake. TLS 1.3's three suites are all carried.
func TLS12CipherSuites() []uint16 {
	var ids []uint16
	for _, s := range suites {
		if !s.tls13 {
			ids = append(ids, s.id)
		}
	}
	return ids
}

// expandLabel is HKDF-Expand-Label of RFC 8446, section 7.1, with an empty context.
func expandLabel(newHash func() hash.Hash, secret []byte, label string, length int) []byte {
	const prefix = "tls13 "
	info := make([]byte, 0, 4+len(prefix)+len(label))
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = append(info, byte(len(prefix)+len(label)))
	info = append(info, prefix...)
	info = append(info, label...)
	info = append(info, 0) // empty context
	out, err := hkdf.Expand(newHash, secret, string(info), length)
	if err != nil {
		// Only an impossible length makes Expand fail; the lengths here are constants.
		panic("tlsrec: " + err.Error())
	}
	return out
}

// trafficKeys derives a TLS 1.3 record key and IV from a traffic secret (RFC 8446, 7.3).
func (s *suite) trafficKeys(secret []byte) (key, iv []byte) {
	return expandLabel(s.newHash, secret, "key", s.keyLen), expandLabel(s.newHash, secret, "iv", s.ivLen)
}

// nextSecret is the KeyUpdate step of RFC 8446, section 7.2.
func (s *suite) nextSecret(secret []byte) []byte {
	return expandLabel(s.newHash, secret, "traffic upd", len(secret))
}

// prf12 is the TLS 1.2 PRF of RFC 5246, section 5: P_hash over label+seed.
func prf12(newHash func() hash.Hash, secret []byte, label string, seed []byte, length int) []byte {
	labelSeed := append([]byte(label), seed...)
	mac := hmac.New(newHash, secret)
	mac.Write(labelSeed)
	a := mac.Sum(nil) // A(1)
	out := make([]byte, 0, length+mac.Size())
	for len(out) < length {
		mac.Reset()
		mac.Write(a)
		mac.Write(labelSeed)
		out = mac.Sum(out)
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
	return out[:length]
}

// keyBlock12 splits the TLS 1.2 key block (RFC 5246, 6.3) into the client's and the
// server's write keys and IVs. AEAD suites have no MAC keys.
func (s *suite) keyBlock12(master, clientRandom, serverRandom []byte) (clientKey, serverKey, clientIV, serverIV []byte) {
	seed := make([]byte, 0, 64)
	seed = append(seed, serverRandom...)
	seed = append(seed, clientRandom...)
	kb := prf12(s.newHash, master, "key expansion", seed, 2*s.keyLen+2*s.ivLen)
	clientKey, kb = kb[:s.keyLen], kb[s.keyLen:]
	serverKey, kb = kb[:s.keyLen], kb[s.keyLen:]
	clientIV, kb = kb[:s.ivLen], kb[s.ivLen:]
	serverIV = kb[:s.ivLen]
	return
}
