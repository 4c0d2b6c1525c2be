package sqlcore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Sweep cursors are the last primary key of a batch, sealed with AES-256-GCM
// under a key derived from the store's masking key (or, without one, a key of
// this process: a cursor that cannot be opened after a restart restarts its
// rule, which is safe, only slower) and bound to their collection, so the
// status a cursor is stored in never holds a value from the database.

const cursorPrefix = "c1."

var processCursorKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // crypto/rand.Read never fails
	return k
}()

func cursorAEAD(secret []byte) (cipher.AEAD, error) {
	if len(secret) == 0 {
		secret = processCursorKey
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("lethe retention sweep cursor v1"))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// SealCursor seals key, the last key of a batch of collection, under secret.
func SealCursor(secret []byte, collection, key string) (string, error) {
	aead, err := cursorAEAD(secret)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	sealed := aead.Seal(nonce, nonce, []byte(key), []byte(collection))
	return cursorPrefix + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// OpenCursor returns the key a cursor was sealed from, or "" (start) for ""
// and for a cursor it cannot open (another secret, another collection,
// tampered): the rule then restarts from its first row, which only examines
// again the rows it already passed.
func OpenCursor(secret []byte, collection, cursor string) string {
	aead, err := cursorAEAD(secret)
	if err != nil || !strings.HasPrefix(cursor, cursorPrefix) {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(cursor, cursorPrefix))
	if err != nil || len(raw) < aead.NonceSize() {
		return ""
	}
	key, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(collection))
	if err != nil {
		return ""
	}
	return string(key)
}
