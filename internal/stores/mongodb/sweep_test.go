package mongodb

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// _ids of several BSON types (numbers, strings, ObjectIds) in one
// collection: batches go on from one type to the next, as MongoDB sorts
// them, so no expired document is left behind by the cursor.
func TestSweepCrossesIDTypes(t *testing.T) {
	db := testdb.NewMongo(t)
	old := primitive.NewDateTimeFromTime(time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC))
	recent := primitive.NewDateTimeFromTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	var docs []bson.D
	for _, id := range []any{int64(1), int64(2), int32(3), 4.5, "a", "b", primitive.NewObjectID(), primitive.NewObjectID()} {
		docs = append(docs, bson.D{{Key: "_id", Value: id}, {Key: "userId", Value: "u"}, {Key: "at", Value: old}})
	}
	docs = append(docs, bson.D{{Key: "_id", Value: "keep"}, {Key: "userId", Value: "u"}, {Key: "at", Value: recent}})
	insert(t, db, "events", docs...)
	s := open(t, db, privacyv1.DataStoreSpec{Collections: []privacyv1.Collection{{Name: "events", OnErasure: privacyv1.ErasureDelete,
		Identity: map[string]privacyv1.Identifier{"userId": "userId"}}}})
	rule := stores.SweepRule{Collection: "events", Field: "at", Cutoff: time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC), Action: stores.ActionDelete, BatchSize: 3}
	ctx := context.Background()
	var rows int64
	cursor := ""
	for i := 0; ; i++ {
		b, err := s.SweepBatch(ctx, rule, cursor)
		if err != nil {
			t.Fatal(err)
		}
		rows, cursor = rows+b.Rows, b.Cursor
		if b.Done {
			break
		}
		if i > 10 {
			t.Fatal("the sweep does not end")
		}
	}
	if rows != 8 {
		t.Errorf("swept %d documents, want 8", rows)
	}
	if left := ids(t, db, "events"); len(left) != 1 || left[0] != "keep" {
		t.Errorf("left %v, want the recent document only", left)
	}
	if p, err := s.CountPastPeriod(ctx, rule); err != nil || p != (stores.PastPeriod{}) {
		t.Errorf("CountPastPeriod = %+v, %v", p, err)
	}
}

// A rule's period field may be a nested document path (meta.createdAt):
// exactly the documents whose nested date is past the cutoff are swept, a
// where condition on a nested path narrows them, a held document stays, and
// a document without the nested date (no meta, meta without it, null) is
// counted as without a date. A top-level createdAt is another field, and a
// date written as text is never compared.
func TestSweepOnANestedDateField(t *testing.T) {
	db := testdb.NewMongo(t)
	old := primitive.NewDateTimeFromTime(time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC))
	recent := primitive.NewDateTimeFromTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	doc := func(id string, rest ...bson.E) bson.D {
		return append(bson.D{{Key: "_id", Value: id}, {Key: "userId", Value: "u-" + id}}, rest...)
	}
	meta := func(fields ...bson.E) bson.E { return bson.E{Key: "meta", Value: bson.D(fields)} }
	insert(t, db, "events",
		doc("old-1", meta(bson.E{Key: "createdAt", Value: old}, bson.E{Key: "source", Value: "web"})),
		doc("old-legal", meta(bson.E{Key: "createdAt", Value: old}, bson.E{Key: "legal", Value: "case 42"})),
		doc("old-held", meta(bson.E{Key: "createdAt", Value: old})),
		doc("recent", meta(bson.E{Key: "createdAt", Value: recent})),
		doc("no-meta"),
		doc("meta-without-date", meta(bson.E{Key: "source", Value: "app"})),
		doc("null-date", meta(bson.E{Key: "createdAt", Value: nil})),
		doc("text-date", meta(bson.E{Key: "createdAt", Value: "2019-01-01T00:00:00Z"})),
		doc("top-level-date", bson.E{Key: "createdAt", Value: old}),
	)
	s := open(t, db, privacyv1.DataStoreSpec{Collections: []privacyv1.Collection{{Name: "events", OnErasure: privacyv1.ErasureDelete,
		Identity: map[string]privacyv1.Identifier{"userId": "userId"}}}})
	ctx := context.Background()
	sweepAll := func(rule stores.SweepRule) int64 {
		t.Helper()
		var rows int64
		cursor := ""
		for i := 0; ; i++ {
			b, err := s.SweepBatch(ctx, rule, cursor)
			if err != nil {
				t.Fatal(err)
			}
			rows, cursor = rows+b.Rows, b.Cursor
			if b.Done {
				return rows
			}
			if i > 10 {
				t.Fatal("the sweep does not end")
			}
		}
	}
	rule := stores.SweepRule{Collection: "events", Field: "meta.createdAt", Cutoff: time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC),
		Action: stores.ActionDelete, BatchSize: 1, HeldKeys: []string{"old-held"}}
	noDate := int64(4) // no-meta, meta-without-date, null-date, top-level-date

	// A where condition on a nested path: documents without meta.legal only.
	narrowed := rule
	narrowed.Where = []stores.Condition{{Field: "meta.legal", IsNull: true}}
	if p, err := s.CountPastPeriod(ctx, narrowed); err != nil || p != (stores.PastPeriod{Rows: 1, Held: 1, WithoutDate: noDate}) {
		t.Errorf("before the narrowed sweep: CountPastPeriod = %+v, %v; want 1 past, 1 held, %d without a date", p, err, noDate)
	}
	if rows := sweepAll(narrowed); rows != 1 {
		t.Errorf("the narrowed sweep deleted %d documents, want 1 (old-1)", rows)
	}
	if p, err := s.CountPastPeriod(ctx, rule); err != nil || p != (stores.PastPeriod{Rows: 1, Held: 1, WithoutDate: noDate}) {
		t.Errorf("before the sweep: CountPastPeriod = %+v, %v; want 1 past (old-legal), 1 held, %d without a date", p, err, noDate)
	}
	if rows := sweepAll(rule); rows != 1 {
		t.Errorf("the sweep deleted %d documents, want 1 (old-legal)", rows)
	}
	left := ids(t, db, "events")
	want := []string{"old-held", "recent", "no-meta", "meta-without-date", "null-date", "text-date", "top-level-date"}
	if !sameSet(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	if p, err := s.CountPastPeriod(ctx, rule); err != nil || p != (stores.PastPeriod{Held: 1, WithoutDate: noDate}) {
		t.Errorf("after the sweep: CountPastPeriod = %+v, %v; want only the held document and %d without a date", p, err, noDate)
	}

	// A path through an array, or one no document holds as a date, is refused.
	for _, field := range []string{"meta[].createdAt", "meta.source"} {
		bad := rule
		bad.Field = field
		if _, err := s.SweepBatch(ctx, bad, ""); !errors.Is(err, stores.ErrInvalid) {
			t.Errorf("rule on %s: SweepBatch error %v, want ErrInvalid", field, err)
		}
	}
}
