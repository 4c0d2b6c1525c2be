package stores

import (
	"reflect"
	"testing"
)

func TestReceiptsOverPasses(t *testing.T) {
	del := func(c string, n int64, why string) CollectionResult {
		return CollectionResult{Collection: c, Action: ActionDelete, Rows: n, Reason: why}
	}
	earlier := []CollectionResult{del("contacts", 1, "answered 200"), del("notes", 1, "answered 202")}

	// A database pass finds only what is left: its changes add to the earlier ones.
	if got, want := AddUp(earlier, []CollectionResult{del("contacts", 2, "")}),
		[]CollectionResult{del("contacts", 3, ""), {Collection: "notes", Action: ActionDelete, Rows: 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("AddUp = %+v, want %+v", got, want)
	}
	// A processor's pass repeats every call: a repeat is not a second change,
	// a repeat answered 404 does not undo the first call, and the calls a
	// failed pass did not reach keep their result.
	pass := []CollectionResult{del("contacts", 0, "answered 404"), del("tickets", 1, "answered 200")}
	want := []CollectionResult{del("contacts", 1, "answered 200"), del("tickets", 1, "answered 200"), del("notes", 1, "answered 202")}
	if got := MergeRepeated(earlier, pass); !reflect.DeepEqual(got, want) {
		t.Errorf("MergeRepeated = %+v, want %+v", got, want)
	}
	if got := MergeRepeated(earlier, earlier); !reflect.DeepEqual(got, earlier) {
		t.Errorf("repeating every call: %+v, want the same receipt %+v", got, earlier)
	}
}
