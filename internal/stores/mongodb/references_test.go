package mongodb

import (
	"context"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// References by document path: sessions.owner.accountId holds an account's
// ObjectId (cascade), referrals.referredBy.account too (setNull: the
// referrals are other people's). The subject's sessions are found through
// the _id values of the subject's accounts and deleted with them; others'
// referrals only lose the link; nothing of anyone else changes. A parent
// value that MongoDB would apply as a pattern (a stored regular expression)
// is never used to find children.
func TestReferencesByDocumentPath(t *testing.T) {
	db := testdb.NewMongo(t)
	ada, bob := primitive.NewObjectID(), primitive.NewObjectID()
	insert(t, db, "accounts",
		bson.D{{Key: "_id", Value: ada}, {Key: "contact", Value: bson.D{{Key: "email", Value: "ada@x.io"}}}, {Key: "handle", Value: primitive.Regex{Pattern: ".*"}}},
		bson.D{{Key: "_id", Value: bob}, {Key: "contact", Value: bson.D{{Key: "email", Value: "bob@x.io"}}}, {Key: "handle", Value: "bob"}},
	)
	insert(t, db, "sessions",
		bson.D{{Key: "_id", Value: "s1"}, {Key: "owner", Value: bson.D{{Key: "accountId", Value: ada}}}, {Key: "ip", Value: "192.0.2.1"}},
		bson.D{{Key: "_id", Value: "s2"}, {Key: "owner", Value: bson.D{{Key: "accountId", Value: ada}}}, {Key: "ip", Value: "192.0.2.1"}},
		bson.D{{Key: "_id", Value: "s3"}, {Key: "owner", Value: bson.D{{Key: "accountId", Value: bob}}}, {Key: "ip", Value: "192.0.2.2"}},
		// Holds the subject's id as text: a reference compares values exactly.
		bson.D{{Key: "_id", Value: "s4"}, {Key: "owner", Value: bson.D{{Key: "accountId", Value: ada.Hex()}}}, {Key: "ip", Value: "192.0.2.4"}},
	)
	insert(t, db, "referrals",
		bson.D{{Key: "_id", Value: "r1"}, {Key: "userId", Value: "carol"}, {Key: "referredBy", Value: bson.D{{Key: "account", Value: ada}, {Key: "note", Value: "x"}}}},
		bson.D{{Key: "_id", Value: "r2"}, {Key: "userId", Value: "dan"}, {Key: "referredBy", Value: bson.D{{Key: "account", Value: bob}}}},
	)
	insert(t, db, "tickets",
		bson.D{{Key: "_id", Value: "t1"}, {Key: "requester", Value: "bob"}},
		bson.D{{Key: "_id", Value: "t2"}, {Key: "requester", Value: "anyone"}},
	)
	s := open(t, db, privacyv1.DataStoreSpec{Collections: []privacyv1.Collection{
		{Name: "accounts", OnErasure: privacyv1.ErasureDelete, Identity: map[string]privacyv1.Identifier{"email": "contact.email"},
			Fields: []privacyv1.Field{{Name: "contact.email", Category: "user.contact.email"}}},
		{Name: "sessions", OnErasure: privacyv1.ErasureDelete,
			References: []privacyv1.Reference{{Field: "owner.accountId", Collection: "accounts"}},
			Fields:     []privacyv1.Field{{Name: "ip", Category: "user.technical.ip"}}},
		{Name: "referrals", OnErasure: privacyv1.ErasureDelete, Identity: map[string]privacyv1.Identifier{"userId": "userId"},
			References: []privacyv1.Reference{{Field: "referredBy.account", Collection: "accounts", OnParentErasure: privacyv1.ParentSetNull}}},
		{Name: "tickets", OnErasure: privacyv1.ErasureDelete,
			References: []privacyv1.Reference{{Field: "requester", Collection: "accounts", CollectionField: "handle"}}},
	}})
	ctx := context.Background()
	if res, err := s.Check(ctx); err != nil || len(res.Problems) > 0 {
		t.Fatalf("Check = %+v, %v", res, err)
	}
	req := stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"email": "ada@x.io"}, RequestID: "r"}
	exp, _, err := s.Export(ctx, stores.Request{Kind: stores.KindAccess, Subject: req.Subject})
	if err != nil {
		t.Fatal(err)
	}
	if len(exp["sessions"]) != 2 || len(exp["tickets"]) != 0 || len(exp["referrals"]) != 0 {
		t.Fatalf("export = %v, want the subject's 2 sessions, no ticket, no referral", exp)
	}
	plan, err := s.Plan(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(plan.Collections, res.Collections) {
		t.Errorf("Plan %+v, Apply %+v", plan.Collections, res.Collections)
	}
	want := map[string]stores.CollectionResult{}
	for _, c := range res.Collections {
		want[c.Collection+"/"+string(c.Action)] = c
	}
	if want["sessions/delete"].Rows != 2 || want["tickets/delete"].Rows != 0 || want["referrals/setNull"].Rows != 1 || want["accounts/delete"].Rows != 1 {
		t.Fatalf("outcome %+v", res.Collections)
	}
	if got := ids(t, db, "sessions"); !slices.Equal(got, []string{"s3", "s4"}) {
		t.Errorf("sessions left %v, want s3 and s4", got)
	}
	if got := ids(t, db, "tickets"); len(got) != 2 {
		t.Errorf("tickets left %v: a stored pattern found children", got)
	}
	r1, r2 := get(t, db, "referrals", "r1"), get(t, db, "referrals", "r2")
	if ref := r1["referredBy"].(bson.M); ref["note"] != "x" || ref["account"] != nil {
		t.Errorf("r1 = %v, want the link removed and the rest kept", r1)
	}
	if r2["referredBy"].(bson.M)["account"] != bob {
		t.Errorf("r2 = %v, someone else's link changed", r2)
	}
	// Applying again finds nothing and changes nothing.
	again, err := s.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range again.Collections {
		if c.Action.ChangesRows() && c.Rows != 0 {
			t.Errorf("second Apply changed %+v", c)
		}
	}
}
