package mongodb

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

type exportRows map[string][]map[string]any

func (e exportRows) Row(collection string, row map[string]any) error {
	e[collection] = append(e[collection], row)
	return nil
}

// A leaf collection (events, reached through devices) is erased by filter:
// Plan counts, Apply deletes in rounds (two documents per deleteMany here,
// across _ids of several BSON types), and what is kept is named by filters
// too: events of a device kept by an exemption, events whose own nested date
// (meta.at) is inside the exemption's period. Exports stream the events
// through a cursor. A text date cannot be compared by a filter: the
// collection is then listed, and the text is read as a date.
func TestLeafCollectionErasedByFilter(t *testing.T) {
	db := testdb.NewMongo(t)
	ctx := context.Background()
	date := func(s string) primitive.DateTime {
		d, err := time.Parse("2006-01-02", s)
		if err != nil {
			t.Fatal(err)
		}
		return primitive.NewDateTimeFromTime(d)
	}
	insert(t, db, "devices",
		bson.D{{Key: "_id", Value: "d1"}, {Key: "owner", Value: bson.D{{Key: "userId", Value: int64(1)}}}, {Key: "bought", Value: date("2024-01-01")}},
		bson.D{{Key: "_id", Value: "d2"}, {Key: "owner", Value: bson.D{{Key: "userId", Value: int64(1)}}}, {Key: "bought", Value: date("2010-01-01")}},
		bson.D{{Key: "_id", Value: "d3"}, {Key: "owner", Value: bson.D{{Key: "userId", Value: int64(2)}}}, {Key: "bought", Value: date("2010-01-01")}},
	)
	event := func(id any, device string, at any) bson.D {
		return bson.D{{Key: "_id", Value: id}, {Key: "device", Value: bson.D{{Key: "id", Value: device}}}, {Key: "payload", Value: "p"}, {Key: "meta", Value: bson.D{{Key: "at", Value: at}}}}
	}
	oid := primitive.NewObjectID()
	insert(t, db, "events",
		event(int64(10), "d2", date("2010-02-01")), event(int64(11), "d2", date("2010-02-02")), event(int64(12), "d2", date("2010-02-03")),
		event("e1", "d2", date("2010-03-01")), event("e2", "d2", date("2024-06-15")), event(oid, "d2", date("2010-04-01")),
		event("k1", "d1", date("2010-05-01")), event("x1", "d3", date("2010-06-01")),
	)
	s := open(t, db, privacyv1.DataStoreSpec{Collections: []privacyv1.Collection{
		{Name: "devices", OnErasure: privacyv1.ErasureDelete, Identity: map[string]privacyv1.Identifier{"userId": "owner.userId"},
			Fields: []privacyv1.Field{{Name: "bought", Category: "user.technical.device"}}},
		{Name: "events", OnErasure: privacyv1.ErasureDelete,
			References: []privacyv1.Reference{{Field: "device.id", Collection: "devices"}},
			Fields:     []privacyv1.Field{{Name: "payload", Category: "user.technical.event"}, {Name: "meta.at", Category: "user.technical.event"}}},
	}})
	s.deleteBatch = 2
	cutoff := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	req := stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"userId": "1"}, RequestID: "r", Exemptions: []stores.Exemption{
		{Collection: "devices", Field: "bought", Cutoff: cutoff, Period: "10y", LegalBasis: "accounting", Rule: "devices-10y"},
		{Collection: "events", Field: "meta.at", Cutoff: cutoff, Period: "10y", LegalBasis: "accounting", Rule: "events-10y"},
	}}
	events := func(res stores.Result) (deleted int64, kept []string) {
		for _, c := range res.Collections {
			if c.Collection != "events" {
				continue
			}
			if c.Action == stores.ActionDelete {
				deleted += c.Rows
			} else {
				kept = append(kept, string(c.Action)+" "+c.Reason+" "+itoa(c.Rows))
				if c.RetainedUntil == nil {
					t.Errorf("kept events without a date they may be erased from: %+v", c)
				}
			}
		}
		return deleted, kept
	}
	wantKept := []string{
		"retain retention rule devices-10y (legal basis: accounting) keeps these rows for 10y (kept with the rows of devices they belong to) 1",
		"retain retention rule events-10y (legal basis: accounting) keeps these rows for 10y 1",
	}

	access := exportRows{}
	res, err := s.StreamExport(ctx, stores.Request{Kind: stores.KindAccess, Subject: req.Subject}, access)
	if err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, row := range access["events"] {
		exported = append(exported, keyText(row["_id"]))
	}
	if want := []string{"10", "11", "12", "e1", "e2", "k1", oid.Hex()}; !slices.Equal(exported, want) {
		t.Errorf("exported events %v, want %v", exported, want)
	}
	for _, c := range res.Collections {
		if c.Collection == "events" && c.Rows != 7 {
			t.Errorf("export counted %d events, want 7", c.Rows)
		}
	}

	plan, err := s.Plan(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if deleted, kept := events(plan); deleted != 5 || !slices.Equal(kept, wantKept) {
		t.Errorf("Plan: delete %d events, kept %q; want 5, %q", deleted, kept, wantKept)
	}
	res, err = s.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if deleted, kept := events(res); deleted != 5 || !slices.Equal(kept, wantKept) {
		t.Errorf("Apply: deleted %d events, kept %q; want 5, %q", deleted, kept, wantKept)
	}
	if left := ids(t, db, "events"); !sameSet(left, []string{"e2", "k1", "x1"}) {
		t.Errorf("events left %v, want e2, k1, x1", left)
	}
	v, err := s.Verify(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if v.Remaining["events"] != 0 {
		t.Errorf("Verify: %d events left", v.Remaining["events"])
	}

	// Text dates: the collection is listed, its dates read as the walk reads them.
	insert(t, db, "devices", bson.D{{Key: "_id", Value: "d4"}, {Key: "owner", Value: bson.D{{Key: "userId", Value: int64(1)}}}, {Key: "bought", Value: date("2010-01-01")}})
	insert(t, db, "events", event("t1", "d4", "2024-05-01"), event("t2", "d4", "2010-05-01"))
	res, err = s.Apply(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	wantKept[1] = "retain retention rule events-10y (legal basis: accounting) keeps these rows for 10y 1"
	if deleted, kept := events(res); deleted != 1 || !slices.Equal(kept, wantKept) {
		t.Errorf("Apply with text dates: deleted %d events, kept %q; want 1, %q", deleted, kept, wantKept)
	}
	if left := ids(t, db, "events"); !sameSet(left, []string{"e2", "k1", "t1", "x1"}) {
		t.Errorf("events left %v, want e2, k1, t1, x1", left)
	}
}

func itoa(n int64) string { s, _ := text(n); return s }

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
