package v1alpha1_test

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// A DataStore's data map never loses protection silently: the admission
// policy lethe-datastore-protection refuses an update that weakens it unless
// the update carries a new spec.weakeningJustification, as RetentionPolicy does.

// protectedStore has one collection of each onErasure, every kind of masking
// parameter, identities and both kinds of reference.
func protectedStore() *v1.DataStore {
	return &v1.DataStore{
		Spec: v1.DataStoreSpec{
			Engine:     v1.EnginePostgres,
			Connection: v1.ConnectionSpec{SecretRef: v1.SecretKeySelector{Name: "app-db", Key: "dsn"}},
			Collections: []v1.Collection{
				{
					Name: "accounts", PrimaryKey: "id", OnErasure: v1.ErasureAnonymize,
					Identity:   map[string]v1.Identifier{"email": "email", "userId": "id"},
					References: []v1.Reference{{Field: "referred_by", Collection: "accounts", OnParentErasure: v1.ParentSetNull}},
					Fields: []v1.Field{
						{Name: "email", Category: "user.contact.email", Masking: &v1.Masking{Strategy: v1.MaskUniqueEmail}},
						{Name: "name", Category: "user.contact.name", Masking: &v1.Masking{Strategy: v1.MaskRedact}},
						{Name: "phone", Category: "user.contact.phone", Masking: &v1.Masking{Strategy: v1.MaskPartial, KeepLast: ptr.To(int32(4))}},
						{Name: "birth_date", Category: "user.profile.birthdate", Masking: &v1.Masking{Strategy: v1.MaskGeneralize, Granularity: "year"}},
					},
				},
				{
					Name: "invoices", PrimaryKey: "id", OnErasure: v1.ErasureRetain, RetainReason: "accounting law: 10 years",
					References: []v1.Reference{{Field: "account_id", Collection: "accounts", OnParentErasure: v1.ParentCascade}},
					Fields:     []v1.Field{{Name: "billing_address", Category: "user.billing.address", Masking: &v1.Masking{Strategy: v1.MaskNullify}}},
				},
				{
					Name: "sessions", Table: "public.sessions", PrimaryKey: "id", OnErasure: v1.ErasureDelete,
					References: []v1.Reference{{Field: "account_id", Collection: "accounts"}},
					Fields:     []v1.Field{{Name: "ip", Category: "user.tracking.ip", Masking: &v1.Masking{Strategy: v1.MaskNullify}}},
				},
			},
		},
	}
}

func coll(ds *v1.DataStore, name string) *v1.Collection {
	for i := range ds.Spec.Collections {
		if string(ds.Spec.Collections[i].Name) == name {
			return &ds.Spec.Collections[i]
		}
	}
	panic("no collection " + name)
}

func field(ds *v1.DataStore, collection, name string) *v1.Field {
	c := coll(ds, collection)
	for i := range c.Fields {
		if string(c.Fields[i].Name) == name {
			return &c.Fields[i]
		}
	}
	panic("no field " + name)
}

type storeChange struct {
	name   string
	change func(*v1.DataStore)
	// want is part of the refusal; empty when the change keeps or increases protection.
	want string
}

func TestWeakeningADataStoreNeedsAJustification(t *testing.T) {
	requirePolicies(t)
	const justify = "this decreases protection: set spec.weakeningJustification to a new explanation to accept it"
	cases := []storeChange{
		{"remove a collection", func(d *v1.DataStore) { d.Spec.Collections = d.Spec.Collections[:2] }, "removing collection(s) sessions from the data map"},
		{"move a collection to another table", func(d *v1.DataStore) { coll(d, "sessions").Table = "archive.sessions" }, "moving collection(s) sessions to another table"},
		{"delete into anonymize", func(d *v1.DataStore) { coll(d, "sessions").OnErasure = v1.ErasureAnonymize }, "lowering onErasure (delete > anonymize > retain) of sessions (delete to anonymize)"},
		{"delete into retain", func(d *v1.DataStore) {
			coll(d, "sessions").OnErasure, coll(d, "sessions").RetainReason = v1.ErasureRetain, "audit"
		}, "sessions (delete to retain)"},
		{"anonymize into retain", func(d *v1.DataStore) {
			coll(d, "accounts").OnErasure, coll(d, "accounts").RetainReason = v1.ErasureRetain, "kept"
		}, "accounts (anonymize to retain)"},
		{"remove a field", func(d *v1.DataStore) { c := coll(d, "accounts"); c.Fields = c.Fields[:2] }, "removing field(s) accounts.phone, accounts.birth_date from the data map"},
		{"nullify into redact", func(d *v1.DataStore) { field(d, "invoices", "billing_address").Masking.Strategy = v1.MaskRedact }, "weakening the masking"},
		{"redact into hash", func(d *v1.DataStore) { field(d, "accounts", "name").Masking.Strategy = v1.MaskHash }, "accounts.name (redact to hash)"},
		{"uniqueEmail into partial", func(d *v1.DataStore) {
			field(d, "accounts", "email").Masking = &v1.Masking{Strategy: v1.MaskPartial, KeepLast: ptr.To(int32(3))}
		}, "accounts.email (uniqueEmail to partial)"},
		{"partial into generalize", func(d *v1.DataStore) {
			field(d, "accounts", "phone").Masking = &v1.Masking{Strategy: v1.MaskGeneralize}
		}, "accounts.phone (partial to generalize)"},
		{"masking removed", func(d *v1.DataStore) { field(d, "accounts", "name").Masking = nil }, "accounts.name (redact to none)"},
		{"partial keeps more", func(d *v1.DataStore) { field(d, "accounts", "phone").Masking.KeepLast = ptr.To(int32(6)) }, "accounts.phone (partial to partial)"},
		{"generalize to months", func(d *v1.DataStore) { field(d, "accounts", "birth_date").Masking.Granularity = "month" }, "accounts.birth_date (generalize to generalize)"},
		{"generalize with a smaller step", func(d *v1.DataStore) { field(d, "accounts", "birth_date").Masking.Step = ptr.To(int64(5)) }, "accounts.birth_date"},
		{"category into customer.content", func(d *v1.DataStore) { field(d, "accounts", "name").Category = "customer.content" }, "changing the category of accounts.name (user.contact.name to customer.content)"},
		{"category into its parent", func(d *v1.DataStore) { field(d, "accounts", "email").Category = "user.contact" }, "accounts.email (user.contact.email to user.contact)"},
		{"identity removed", func(d *v1.DataStore) { delete(coll(d, "accounts").Identity, "userId") }, "removing (or remapping) identity type(s) accounts.userId"},
		{"identity remapped", func(d *v1.DataStore) { coll(d, "accounts").Identity["email"] = "old_email" }, "accounts.email"},
		{"reference removed", func(d *v1.DataStore) { coll(d, "sessions").References = nil }, "removing a reference, or turning it from cascade into setNull, in sessions"},
		{"cascade into setNull", func(d *v1.DataStore) { coll(d, "invoices").References[0].OnParentErasure = v1.ParentSetNull }, "in invoices"},

		// Changes that keep or increase protection need no justification.
		{"add a collection", func(d *v1.DataStore) {
			d.Spec.Collections = append(d.Spec.Collections, v1.Collection{Name: "tickets", PrimaryKey: "id", References: []v1.Reference{{Field: "account_id", Collection: "accounts"}}})
		}, ""},
		{"add a field", func(d *v1.DataStore) {
			c := coll(d, "sessions")
			c.Fields = append(c.Fields, v1.Field{Name: "user_agent", Category: "user.tracking.browser"})
		}, ""},
		{"retain into delete", func(d *v1.DataStore) {
			coll(d, "invoices").OnErasure, coll(d, "invoices").RetainReason = v1.ErasureDelete, ""
		}, ""},
		{"anonymize into delete", func(d *v1.DataStore) { coll(d, "accounts").OnErasure = v1.ErasureDelete }, ""},
		{"redact into nullify", func(d *v1.DataStore) { field(d, "accounts", "name").Masking.Strategy = v1.MaskNullify }, ""},
		{"masking added", func(d *v1.DataStore) {
			c := coll(d, "sessions")
			c.Fields = append(c.Fields, v1.Field{Name: "agent", Category: "user.tracking.browser", Masking: &v1.Masking{Strategy: v1.MaskRandomize}})
		}, ""},
		{"redact into randomize (as strong)", func(d *v1.DataStore) { field(d, "accounts", "name").Masking.Strategy = v1.MaskRandomize }, ""},
		{"partial keeps less", func(d *v1.DataStore) { field(d, "accounts", "phone").Masking.KeepLast = ptr.To(int32(2)) }, ""},
		{"generalize with a larger step", func(d *v1.DataStore) { field(d, "accounts", "birth_date").Masking.Step = ptr.To(int64(20)) }, ""},
		{"category into a sub-category", func(d *v1.DataStore) { field(d, "accounts", "name").Category = "user.contact.name.full" }, ""},
		{"identity added", func(d *v1.DataStore) { coll(d, "sessions").Identity = map[string]v1.Identifier{"sessionId": "id"} }, ""},
		{"add a reference", func(d *v1.DataStore) {
			c := coll(d, "invoices")
			c.References = append(c.References, v1.Reference{Field: "payer_id", Collection: "accounts", OnParentErasure: v1.ParentSetNull})
		}, ""},
		{"another retain reason", func(d *v1.DataStore) { coll(d, "invoices").RetainReason = "Code de commerce L123-22" }, ""},
	}
	ns := env.Namespace(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := protectedStore()
			d.Namespace, d.Name = ns, fmt.Sprintf("store-%d", i)
			if err := env.Client.Create(t.Context(), d); err != nil {
				t.Fatal(err)
			}
			tc.change(d)
			err := env.Client.Update(t.Context(), d)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("a change that keeps protection was refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted without a justification, want a refusal mentioning %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), justify) {
				t.Fatalf("refused with %q, want it to mention %q and how to accept it", err, tc.want)
			}
			// With a justification the same change is accepted.
			if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(d), d); err != nil {
				t.Fatal(err)
			}
			tc.change(d)
			d.Spec.WeakeningJustification = "DPO approval 2026-07: " + tc.name
			if err := env.Client.Update(t.Context(), d); err != nil {
				t.Fatalf("refused with a justification: %v", err)
			}
		})
	}
}

func TestADataStoreJustificationCannotBeReused(t *testing.T) {
	requirePolicies(t)
	ns := env.Namespace(t)
	d := protectedStore()
	d.Namespace, d.Name = ns, "reuse"
	if err := env.Client.Create(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	coll(d, "sessions").OnErasure, coll(d, "sessions").RetainReason = v1.ErasureRetain, "fraud investigations"
	d.Spec.WeakeningJustification = "fraud team needs sessions (DPO ticket 18)"
	if err := env.Client.Update(t.Context(), d); err != nil {
		t.Fatalf("justified weakening refused: %v", err)
	}
	// A later weakening cannot ride on the previous justification...
	field(d, "accounts", "name").Masking.Strategy = v1.MaskHash
	if err := env.Client.Update(t.Context(), d); err == nil || !strings.Contains(err.Error(), "weakening the masking") {
		t.Fatalf("second weakening with the same justification: got %v, want a refusal", err)
	}
	// ... nor on an empty one.
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(d), d); err != nil {
		t.Fatal(err)
	}
	field(d, "accounts", "name").Masking.Strategy = v1.MaskHash
	d.Spec.WeakeningJustification = ""
	if err := env.Client.Update(t.Context(), d); err == nil {
		t.Fatal("weakening with an empty justification accepted")
	}
	// Strengthening goes through whatever the justification says.
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(d), d); err != nil {
		t.Fatal(err)
	}
	coll(d, "sessions").OnErasure, coll(d, "sessions").RetainReason = v1.ErasureDelete, ""
	if err := env.Client.Update(t.Context(), d); err != nil {
		t.Fatalf("strengthening refused: %v", err)
	}
}
