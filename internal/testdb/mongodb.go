package testdb

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// DefaultMongoURL is the local MongoDB-wire server (FerretDB, started by
// hack/test-services.sh) tests use unless LETHE_TEST_MONGODB_URL says otherwise.
const DefaultMongoURL = "mongodb://127.0.0.1:27017/"

// Mongo is one test's database on the local MongoDB-wire server.
type Mongo struct {
	// URL names the server and the test's database, for the code under test.
	URL string
	// Name of the database: lethe_test_<random>.
	Name string
	// Client is connected to the server, for setting up and inspecting documents.
	Client *mongo.Client
	DB     *mongo.Database
}

// NewMongo connects to LETHE_TEST_MONGODB_URL (default DefaultMongoURL, a
// URL without a database), picks a fresh database and drops it when the test
// ends. It fails the test when the server cannot be reached: these tests are
// about the real server.
func NewMongo(t testing.TB) *Mongo {
	t.Helper()
	base := os.Getenv("LETHE_TEST_MONGODB_URL")
	if base == "" {
		base = DefaultMongoURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(base).SetServerSelectionTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("LETHE_TEST_MONGODB_URL: %v", err)
	}
	if err := client.Ping(ctx, nil); err != nil {
		_ = client.Disconnect(context.Background())
		t.Fatalf("connecting to the test MongoDB server (run hack/test-services.sh): %v", err)
	}
	name := "lethe_test_" + redisToken()
	host, query, _ := strings.Cut(strings.TrimPrefix(base, "mongodb://"), "?")
	host, _, _ = strings.Cut(host, "/")
	url := "mongodb://" + host + "/" + name
	if query != "" {
		url += "?" + query
	}
	m := &Mongo{URL: url, Name: name, Client: client, DB: client.Database(name)}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := m.DB.Drop(ctx); err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
		}
		_ = client.Disconnect(ctx)
	})
	return m
}
