package audit

import (
	"strings"
	"testing"
)

func TestSubjectDigestIsKeyedStableAndUnambiguous(t *testing.T) {
	key := []byte("k1")
	a := SubjectDigest(key, map[string]string{"email": "a@x.io", "userId": "42"})
	b := SubjectDigest(key, map[string]string{"userId": "42", "email": "a@x.io"})
	if a != b {
		t.Fatalf("digest depends on map order: %s vs %s", a, b)
	}
	if !strings.HasPrefix(a, DigestPrefix) || len(a) != len(DigestPrefix)+64 {
		t.Fatalf("unexpected digest shape %q", a)
	}
	if a == SubjectDigest([]byte("k2"), map[string]string{"email": "a@x.io", "userId": "42"}) {
		t.Fatal("digest does not depend on the key")
	}
	// Concatenation ambiguity: {"ab": "c"} vs {"a": "bc"} must differ.
	if SubjectDigest(key, map[string]string{"ab": "c"}) == SubjectDigest(key, map[string]string{"a": "bc"}) {
		t.Fatal("digest is ambiguous across type/value boundaries")
	}
	if strings.Contains(a, "a@x.io") || strings.Contains(a, "42") && strings.Contains(a, "userId") {
		t.Fatal("digest leaks the identity")
	}
}

func TestReceiptDigestChangesWithContent(t *testing.T) {
	d1, err := ReceiptDigest(map[string]int{"rows": 1})
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := ReceiptDigest(map[string]int{"rows": 2})
	if d1 == d2 || !strings.HasPrefix(d1, "sha256:") {
		t.Fatalf("receipt digests %s %s", d1, d2)
	}
}
