package storetest

import (
	"errors"
	"strings"

	"github.com/lethe-dev/lethe/internal/stores"
)

// refused checks that Apply refuses req with ErrInvalid and a message
// containing want, without repeating the identities, before any query: the
// store is closed, so a query would fail otherwise (and a processor would
// record a call, which the snapshot would show).
func refused(t T, e *env, req func(x *fx) stores.Request, want string) {
	t.Helper()
	x := e.mustOpen(t, Fixture{})
	s := x.Open(t, x.f.Spec(), MaskingKey)
	s.Close()
	before := x.Snapshot(t)
	r := req(x)
	_, err := s.Apply(ctx, r)
	if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Apply() error = %v, want ErrInvalid containing %q", err, want)
	}
	for _, v := range r.Subject {
		if strings.TrimSpace(v) != "" {
			containsNone(t, "error", err.Error(), v)
		}
	}
	unchanged(t, "a refused request", before, x.Snapshot(t))
}

// refusal is the suite's wording of a refusal, or the engine's own.
func (e *env) refusal(key, wording string) string {
	if w, ok := e.suite.Texts.Refusals[key]; ok {
		return w
	}
	return wording
}

// An empty identity (or one of spaces) would address every row, or every
// key of a pattern: it never reaches the store.
func refusesAnEmptyIdentity(t T, e *env) {
	for _, v := range []string{" \t", ""} {
		refused(t, e, func(x *fx) stores.Request {
			return erasure(map[string]string{"email": v, "userId": x.id(1)})
		}, e.refusal("empty identity", "identity email has an empty value"))
	}
}

// A request without identities is a mistake, not a subject with no data.
func refusesARequestWithoutIdentity(t T, e *env) {
	refused(t, e, func(*fx) stores.Request { return erasure(nil) }, e.refusal("no identity", "no subject identity"))
}

// A subject none of whose identity types the store maps cannot be found in
// it: an error naming the types (never the values), not an empty receipt.
func refusesIdentitiesTheStoreDoesNotMap(t T, e *env) {
	refused(t, e, func(*fx) stores.Request { return erasure(map[string]string{"stripeId": "cus_123"}) },
		e.refusal("unmapped identities", "none of the subject's identity types (stripeId) is mapped in this store, which knows email, userId"))
}

func refusesRectificationWithoutValues(t T, e *env) {
	refused(t, e, func(x *fx) stores.Request { return rectification(x.subject(), nil) }, e.refusal("rectification without values", "needs values"))
}

// A hold naming a collection the store does not have is a mistake in the
// LegalHold: the erasure must not go ahead as if nothing were held.
func refusesAHoldOnAnUnknownCollection(t T, e *env) {
	refused(t, e, func(x *fx) stores.Request {
		r := erasure(x.subject())
		r.Holds = []stores.Hold{{Collection: "nope", Name: "h"}}
		return r
	}, e.refusal("unknown held collection", `collection "nope"`))
}

func refusesToApplyAnAccessRequest(t T, e *env) {
	refused(t, e, func(x *fx) stores.Request { return access(x.subject()) }, e.refusal("access applied", "exported, not applied"))
}
