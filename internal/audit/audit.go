// Package audit computes what Lethe records instead of personal data: a keyed
// digest of a subject's identities, and a digest of a request's receipt.
package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"sort"
)

// DigestPrefix marks the algorithm, so it can change without ambiguity.
const DigestPrefix = "hmac-sha256:"

// SubjectDigest is a keyed HMAC-SHA256 of the identities. Identity types are
// sorted and every part is length-prefixed, so no two different subjects share
// an encoding. Without the key, the digest reveals nothing and cannot be brute-
// forced from a list of e-mail addresses.
func SubjectDigest(key []byte, identities map[string]string) string {
	mac := hmac.New(sha256.New, key)
	types := make([]string, 0, len(identities))
	for t := range identities {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		writeLengthPrefixed(mac, t)
		writeLengthPrefixed(mac, identities[t])
	}
	return DigestPrefix + hex.EncodeToString(mac.Sum(nil))
}

func writeLengthPrefixed(w interface{ Write([]byte) (int, error) }, s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	_, _ = w.Write(n[:])
	_, _ = w.Write([]byte(s))
}

// ReceiptDigest is the SHA-256 of the receipt's canonical JSON encoding
// (encoding/json sorts map keys and keeps struct field order).
func ReceiptDigest(receipt any) (string, error) {
	b, err := json.Marshal(receipt)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
