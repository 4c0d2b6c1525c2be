package mysql

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Export holds the subject's rows only: primary key and mapped fields in
// scope, as JSON-friendly values; none of the look-alikes.
func TestMySQLExportReturnsOnlyTheSubjectsRows(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
	req := stores.Request{Kind: stores.KindAccess, Subject: subject}
	exp, res, err := f.store.Export(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := stores.Export{
		"accounts": {{"id": int64(1), "email": "a_b@x.io", "name": "Ada Subject", "phone": "+33 6 12 34 56 78", "birth_date": "1990-05-17", "avatar": "3q2+7w=="}},
		"invoices": {
			{"id": int64(10), "billing_address": "1 Subject Street", "amount": "120.50", "issued_at": "2014-01-10T00:00:00Z"},
			{"id": int64(11), "billing_address": "1 Subject Street", "amount": "99.99", "issued_at": "2024-06-15T00:00:00Z"},
		},
		"invoice_lines": {{"id": int64(100), "description": "hosting"}, {"id": int64(101), "description": "database"}, {"id": int64(102), "description": "hosting"}},
		"login_events":  {{"id": int64(1000), "ip": "192.0.2.1"}, {"id": int64(1002), "ip": "192.0.2.1"}},
		"newsletter": {
			{"id": "00000000-0000-4000-8000-000000000001", "email": "a_b@x.io"},
			{"id": "00000000-0000-4000-8000-000000000003", "email": "other@x.io"},
		},
		"leads":         {{"id": int64(1), "email": "a_b@x.io"}},
		"devices":       {{"id": "AAAAAAAAAAAAAAAAAAAAoQ==", "label": "phone"}},
		"device_tokens": {{"id": int64(500), "token": "tok-1"}, {"id": int64(502), "token": "tok-3"}},
		"tickets":       {{"id": int64(1), "requester_email": "a_b@x.io", "body": "my invoice"}},
	}
	if !reflect.DeepEqual(exp, want) {
		t.Fatalf("export =\n%v\nwant\n%v", exp, want)
	}
	raw, err := json.Marshal(exp)
	if err != nil {
		t.Fatalf("the export is not JSON-friendly: %v", err)
	}
	for _, other := range []string{"A_B@x.io", "a_b@x.io ", "á_b@x.io", "axb@x.io", "upper", "tok-2"} {
		if strings.Contains(string(raw), other) {
			t.Errorf("the export holds %q, which is not the subject's", other)
		}
	}
	assertOutcome(t, res, "accounts export 1", "invoices export 2", "invoice_lines export 3", "login_events export 2", "newsletter export 2",
		"leads export 1", "devices export 1", "device_tokens export 2", "tickets export 1")

	plan, err := f.store.Plan(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plan, res) {
		t.Fatalf("Plan reported %v, Export %v", outcome(plan), outcome(res))
	}
}

// A scope narrows the export to the collections and fields it covers.
func TestMySQLExportHonoursScope(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
	exp, _, err := f.store.Export(context.Background(), stores.Request{
		Kind: stores.KindAccess, Subject: subject, Scope: datamap.Scope{Categories: []string{"user.billing.address", "user.contact.phone"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := stores.Export{
		"accounts": {{"id": int64(1), "phone": "+33 6 12 34 56 78"}},
		"invoices": {{"id": int64(10), "billing_address": "1 Subject Street"}, {"id": int64(11), "billing_address": "1 Subject Street"}},
	}
	if !reflect.DeepEqual(exp, want) {
		t.Fatalf("export =\n%v\nwant\n%v", exp, want)
	}
}

// Rectification sets the fields of exactly the named category in the
// subject's rows only; a parent category names no field; running it again
// changes nothing; a case-only correction is a change.
func TestMySQLRectificationUpdatesOnlyTheSubject(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
	ctx := context.Background()
	rectify := func(values map[string]string) stores.Result {
		t.Helper()
		req := stores.Request{Kind: stores.KindRectification, Subject: subject, Rectification: values}
		plan, err := f.store.Plan(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		res, err := f.store.Apply(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(plan, res) {
			t.Fatalf("Plan reported %v, Apply %v", outcome(plan), outcome(res))
		}
		return res
	}
	before := f.snapshot(t)

	assertOutcome(t, rectify(map[string]string{"user.contact": "new@x.io"}))
	assertOutcome(t, rectify(map[string]string{"user.identity.name": "ADA SUBJECT"}), "accounts rectify 1")
	values := map[string]string{"user.contact.email": "ada@new.example", "user.contact.phone": "+33 7 00 00 00 01", "user.identity.birthdate": "1990-05-18"}
	assertOutcome(t, rectify(values), "accounts rectify 1", "newsletter rectify 2", "leads rectify 1", "tickets rectify 1")

	want := map[string][]string{"accounts": {"1"}, "newsletter": subjectRowIDs["newsletter"], "leads": {"1"}, "tickets": {"1"}}
	if got := changedRows(before, f.snapshot(t)); !reflect.DeepEqual(got, want) {
		t.Fatalf("changed rows = %v, want %v", got, want)
	}
	if got := f.queryString(t, "SELECT CONCAT_WS('|', email, name, phone, birth_date) FROM accounts WHERE id = 1"); got != "ada@new.example|ADA SUBJECT|+33 7 00 00 00 01|1990-05-18" {
		t.Fatalf("rectified account = %q", got)
	}
	// The subject is now found by userId only; nothing is left to change.
	assertOutcome(t, rectify(values), "accounts rectify 0", "newsletter rectify 0", "leads rectify 0", "tickets rectify 0")
}

// A corrected value that does not fit the column is refused, not truncated,
// and the error does not repeat it.
func TestMySQLRectificationRefusesValuesThatDoNotFit(t *testing.T) {
	f := newFixture(t, privacyv1.ErasureDelete)
	for _, tt := range []struct{ category, value, want string }{
		{"user.contact.phone", "+33 6 00 00 00 00 00 00 00 00 00 00 00 00", `value too long for the column (MySQL error 1406, SQLSTATE 22001) column "phone"`},
		{"user.identity.birthdate", "the seventeenth of May", `invalid value for the column's type (MySQL error 1292, SQLSTATE 22007)`},
	} {
		_, err := f.store.Apply(context.Background(), stores.Request{Kind: stores.KindRectification, Subject: subject, Rectification: map[string]string{tt.category: tt.value}})
		if !errors.Is(err, stores.ErrInvalid) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "seventeenth") || strings.Contains(err.Error(), "+33") {
			t.Errorf("%s: Apply() error = %v, want ErrInvalid saying %s, without the value", tt.category, err, tt.want)
		}
	}
	if got := f.queryString(t, "SELECT CONCAT_WS('|', phone, birth_date) FROM accounts WHERE id = 1"); got != "+33 6 12 34 56 78|1990-05-17" {
		t.Fatalf("account = %q after refused rectifications", got)
	}
}
