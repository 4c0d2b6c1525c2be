package sqlcore

import (
	"errors"
	"slices"
	"strings"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

func TestCursorRoundTripsOnlyForItsCollectionAndSecret(t *testing.T) {
	secret := []byte("masking key")
	c, err := SealCursor(secret, "subscribers", "user7@x.io")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(c, "user7") || !strings.HasPrefix(c, "c1.") {
		t.Fatalf("cursor %q shows its key or lacks its version", c)
	}
	if got := OpenCursor(secret, "subscribers", c); got != "user7@x.io" {
		t.Errorf("OpenCursor = %q", got)
	}
	for name, got := range map[string]string{
		"another collection": OpenCursor(secret, "accounts", c),
		"another secret":     OpenCursor([]byte("other"), "subscribers", c),
		"tampered":           OpenCursor(secret, "subscribers", c[:len(c)-2]+"AA"),
		"not a cursor":       OpenCursor(secret, "subscribers", "user7@x.io"),
	} {
		if got != "" {
			t.Errorf("%s: OpenCursor = %q, want a restart", name, got)
		}
	}
}

func TestErasureOfNarrowsDeleteToTheScope(t *testing.T) {
	c := &datamap.Collection{Name: "accounts", OnErasure: privacyv1.ErasureDelete, Fields: []datamap.Field{
		{Name: "email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
		{Name: "plan", Category: "user.billing.plan"},
	}}
	if e, err := ErasureOf(c, datamap.Scope{}); err != nil || e.Action != stores.ActionDelete {
		t.Errorf("full scope: %+v, %v; want delete", e, err)
	}
	if e, err := ErasureOf(c, datamap.Scope{Categories: []string{"user.contact"}}); err != nil || e.Action != stores.ActionAnonymize || len(e.Fields) != 1 {
		t.Errorf("contact scope: %+v, %v; want anonymize email only", e, err)
	}
	if _, err := ErasureOf(c, datamap.Scope{Categories: []string{"user.billing"}}); !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), "(plan)") {
		t.Errorf("billing scope: %v; want ErrInvalid naming plan", err)
	}
}

func TestWithoutAndIntersectKeepOrder(t *testing.T) {
	keys := []string{"3", "1", "2"}
	if got := Without(keys, []string{"1"}); !slices.Equal(got, []string{"3", "2"}) {
		t.Errorf("Without = %v", got)
	}
	if got := Intersect(keys, []string{"2", "3", "9"}); !slices.Equal(got, []string{"3", "2"}) {
		t.Errorf("Intersect = %v", got)
	}
}
