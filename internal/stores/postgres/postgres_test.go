package postgres

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/storetest"
	"github.com/lethe-dev/lethe/internal/testdb"
)

// What only PostgreSQL has: connection errors of pgx, identifier quoting
// (identifier_fuzz_test.go). Everything else is the conformance suite.

func fixtureMap(t *testing.T) *datamap.Map {
	t.Helper()
	spec := storetest.Fixture{}.Spec()
	spec.Engine = privacyv1.EnginePostgres
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// A DSN that does not parse is invalid (and the error does not repeat its
// password); a server that does not answer is unavailable.
func TestNewClassifiesConnectionErrors(t *testing.T) {
	m := fixtureMap(t)
	if _, err := New(context.Background(), "postgres://user:secret@%zz", m, nil, testdb.Loopback); !errors.Is(err, stores.ErrInvalid) || strings.Contains(err.Error(), "secret") {
		t.Errorf("New(bad DSN) error = %v, want ErrInvalid without the password", err)
	}
	if _, err := New(context.Background(), "postgres://postgres:secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", m, nil, testdb.Loopback); !errors.Is(err, stores.ErrUnavailable) || strings.Contains(err.Error(), "secret") {
		t.Errorf("New(closed port) error = %v, want ErrUnavailable without the password", err)
	}
}

// A statement the database cancels at the store's statement timeout is
// unavailable (retrying may help) and a statement timeout (repeated, the
// subject is too large for the store): the part is rolled back whole.
func TestStatementTimeoutIsReportedAsSuch(t *testing.T) {
	h := variants[0].open(t, storetest.Fixture{}).(*harness)
	// Each deleted newsletter row takes 0.3 s: the subject's part cannot finish in 200 ms.
	h.exec(t, `CREATE FUNCTION slow_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.3); RETURN OLD; END $$;
		CREATE TRIGGER slow BEFORE DELETE ON newsletter FOR EACH ROW EXECUTE FUNCTION slow_delete()`)
	s, err := New(context.Background(), h.dsn, fixtureMapWithTables(t), storetest.MaskingKey, testdb.Loopback, WithTimeouts(5*time.Second, 200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	before := h.Snapshot(t)
	_, err = s.Apply(context.Background(), stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"email": "a_b@x.io"}, RequestID: "req-1"})
	if !errors.Is(err, stores.ErrStatementTimeout) || !errors.Is(err, stores.ErrUnavailable) || strings.Contains(err.Error(), "a_b@x.io") {
		t.Fatalf("err = %v, want a statement timeout (unavailable), without the identity", err)
	}
	if after := h.Snapshot(t); !reflect.DeepEqual(after, before) {
		t.Error("a part cancelled at the statement timeout changed rows")
	}
}

// A restore that drops and re-creates the database ends every session: the
// next transaction must not fail on the pool's ended connections (it used to,
// and a replay check then waited a retry interval).
func TestEndedConnectionsAreReplacedAtOnce(t *testing.T) {
	h := variants[0].open(t, storetest.Fixture{}).(*harness)
	s, err := New(context.Background(), h.dsn, fixtureMapWithTables(t), storetest.MaskingKey, testdb.Loopback)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	subject := stores.Request{Kind: stores.KindErasure, Subject: map[string]string{"email": "a_b@x.io"}, RequestID: "req-1"}
	// Several connections in the pool, all idle afterwards.
	done := make(chan error, 4)
	for range 4 {
		go func() { _, err := s.Plan(context.Background(), subject); done <- err }()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if idle := s.pool.Stat().IdleConns(); idle < 2 {
		t.Logf("only %d idle connection(s) in the pool", idle)
	}
	h.exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	// Within the pool's one-second idle ping window: BEGIN meets the ended connection.
	if _, err := s.Plan(context.Background(), subject); err != nil {
		t.Fatalf("the first plan after the server ended the sessions failed: %v", err)
	}
}

// fixtureMapWithTables is the fixture's map with the harness's table names.
func fixtureMapWithTables(t *testing.T) *datamap.Map {
	t.Helper()
	spec := storetest.Fixture{}.Spec()
	spec.Engine = privacyv1.EnginePostgres
	for i := range spec.Collections {
		if table, ok := tables[string(spec.Collections[i].Name)]; ok {
			spec.Collections[i].Table = table
		}
	}
	m, err := datamap.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
