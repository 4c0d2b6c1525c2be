package mongodb

import (
	"context"
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
