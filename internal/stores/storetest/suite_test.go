package storetest

import (
	"reflect"
	"testing"
)

func TestMatchLinesLeavesOutOnlyOptionalLines(t *testing.T) {
	want := []string{"?orders delete 0", "orders retain 3", "contacts delete 2"}
	for _, c := range []struct {
		got []string
		ok  bool
	}{
		{[]string{"orders delete 0", "orders retain 3", "contacts delete 2"}, true},
		{[]string{"orders retain 3", "contacts delete 2"}, true},
		{[]string{"orders retain 3"}, false},
		{[]string{"orders delete 1", "orders retain 3", "contacts delete 2"}, false},
		{[]string{"orders retain 3", "contacts delete 2", "contacts retain 1"}, false},
	} {
		if got := matchLines(c.got, want); got != c.ok {
			t.Errorf("matchLines(%v) = %v, want %v", c.got, got, c.ok)
		}
	}
}

func TestChangedListsDeletedAddedAndChangedRows(t *testing.T) {
	before := Snapshot{"a": {"1": {"x": "1"}, "2": {"x": "2"}, "3": {"x": "3"}}, "b": {"9": {}}}
	after := Snapshot{"a": {"1": {"x": "1"}, "2": {"x": "two"}, "4": {"x": "4"}}, "b": {"9": {}}}
	if got, want := Changed(before, after), map[string][]string{"a": {"2", "3", "4"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("Changed = %v, want %v", got, want)
	}
}

// A known gap's recorder collects failures and ends the scenario on Fatal,
// without failing the test.
func TestRecorderEndsTheScenarioOnFatal(t *testing.T) {
	reached := false
	failures := runRecorded(t, func(rt T) {
		rt.Errorf("first %d", 1)
		rt.Fatal("second")
		reached = true
	})
	if reached || !reflect.DeepEqual(failures, []string{"first 1", "second"}) {
		t.Errorf("failures %v, reached after Fatal %v", failures, reached)
	}
}

// Every scenario the suite declares has a distinct name, and every feature
// a collection needs is a known feature.
func TestScenariosAndFixtureAreConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, sc := range scenarios {
		if seen[sc.name] {
			t.Errorf("scenario %s declared twice", sc.name)
		}
		seen[sc.name] = true
	}
	for _, c := range (Fixture{Subscribers: true}).all() {
		for _, f := range c.Needs {
			if !containsFeature(f) {
				t.Errorf("collection %s needs unknown feature %s", c.Spec.Name, f)
			}
		}
	}
}

func containsFeature(f Feature) bool {
	for _, g := range allFeatures {
		if g == f {
			return true
		}
	}
	return false
}
