package http

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"sigs.k8s.io/yaml"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/stores"
)

// The samples are what users copy: they must fit the engine without problems.
func TestSamplesCompileAndPlan(t *testing.T) {
	cases := map[string][]stores.CollectionResult{
		"datastore_stripe.yaml": {
			{Collection: "customers", Action: stores.ActionDelete, Rows: -1, Reason: "processor: DELETE /v1/customers/{customerId}"},
		},
		"datastore_intercom.yaml": {
			{Collection: "contacts", Action: stores.ActionDelete, Rows: -1, Reason: "processor: POST /user_delete_requests"},
		},
	}
	for file, want := range cases {
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "samples", file))
		if err != nil {
			t.Fatal(err)
		}
		ds := &privacyv1.DataStore{}
		if err := yaml.UnmarshalStrict(b, ds); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		s, _ := newStore(t, "https://processor.example", ds.Spec)
		check, _ := s.Check(context.Background())
		if len(check.Problems)+len(check.Warnings) > 0 {
			t.Errorf("%s: %+v", file, check)
		}
		subject := map[string]string{"customerId": "cus_1", "intercomUserId": "u1", "email": "a@b.c"}
		plan, err := s.Plan(context.Background(), erasure(subject))
		if err != nil || !reflect.DeepEqual(plan.Collections, want) {
			t.Errorf("%s: plan %+v, %v; want %+v", file, plan.Collections, err, want)
		}
	}
}
