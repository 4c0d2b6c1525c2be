package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

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
