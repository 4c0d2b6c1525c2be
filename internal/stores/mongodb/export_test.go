package mongodb

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/bson"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores/storetest"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// A subject with 50,000 documents in a leaf collection exports whole under a
// budget it fits, through a cursor, and is refused under a small one before
// the manager allocates the export.
func TestALargeSubjectsExportStreamsWithinItsBudget(t *testing.T) {
	const rows, payload = 50000, 150
	db := testdb.NewMongo(t)
	docs := make([]any, 0, rows+1000)
	for g := 1; g <= rows+1000; g++ {
		user := int64(8)
		if g <= rows {
			user = 7
		}
		docs = append(docs, bson.D{{Key: "_id", Value: int64(g)}, {Key: "id", Value: int64(g)}, {Key: "user_id", Value: user},
			{Key: "payload", Value: strings.Repeat("p", payload) + fmt.Sprint(g)}})
	}
	if _, err := db.DB.Collection("large_export").InsertMany(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
	spec := storetest.LargeExportSpec(privacyv1.EngineMongoDB, "")
	storetest.LargeExport(t, open(t, db, spec), rows, payload)
}
