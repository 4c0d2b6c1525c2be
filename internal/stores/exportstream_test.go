package stores_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/internal/stores"
)

// A document is the JSON of the stores' exports, as json.Marshal writes it:
// a store without rows is {}, collections in the order written.
func TestDocumentIsTheJSONOfTheExports(t *testing.T) {
	all := map[string]stores.Export{
		"a-db":  {"accounts": {{"id": 1, "email": "a@x.io"}}, "logs": {{"id": 2, "ip": "<10.0.0.1>"}, {"id": 3, "ip": nil}}},
		"b-crm": {},
		"c-kv":  {"sessions": {{"key": "s:1", "type": "hash", "value": map[string]string{"b": "2", "a": "1"}}}},
	}
	var buf bytes.Buffer
	doc := stores.NewDocument(&buf, 0)
	for _, name := range []string{"a-db", "b-crm", "c-kv"} {
		sec := doc.Store(name)
		for _, c := range []string{"accounts", "logs", "sessions"} {
			for _, row := range all[name][c] {
				if err := sec.Row(c, row); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := sec.End(); err != nil {
			t.Fatal(err)
		}
	}
	if err := doc.Close(); err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(all)
	if buf.String() != string(want) {
		t.Errorf("document =\n%s\nwant\n%s", buf.String(), want)
	}
	if doc.Size() != int64(buf.Len()) {
		t.Errorf("Size() = %d, wrote %d", doc.Size(), buf.Len())
	}
}

// A row that would pass the budget is refused whole, with sizes and the
// collection; nothing more is written after.
func TestDocumentRefusesTheRowThatWouldPassTheBudget(t *testing.T) {
	var buf bytes.Buffer
	doc := stores.NewDocument(&buf, 64)
	sec := doc.Store("db")
	var err error
	rows := 0
	for err == nil {
		err = sec.Row("logs", map[string]any{"id": rows, "secret": "s3cr3t-value"})
		rows++
	}
	var tooLarge *stores.ExportTooLargeError
	if !errors.As(err, &tooLarge) || !errors.Is(err, stores.ErrExportTooLarge) {
		t.Fatalf("err = %v, want ErrExportTooLarge", err)
	}
	if tooLarge.Limit != 64 || tooLarge.Reached != int64(buf.Len()) || tooLarge.Reached > 64 || tooLarge.Collection != "logs" {
		t.Errorf("refusal %+v after %d bytes", tooLarge, buf.Len())
	}
	if msg := err.Error(); strings.Contains(msg, "s3cr3t") || !strings.Contains(msg, "limit of 64 bytes") {
		t.Errorf("message %q quotes a value or does not name the limit", msg)
	}
	n := buf.Len()
	if err := sec.Row("logs", map[string]any{"id": 1}); err == nil || buf.Len() != n {
		t.Error("a refused document took another row")
	}
	if err := doc.Close(); !errors.Is(err, stores.ErrExportTooLarge) {
		t.Errorf("Close after a refusal = %v", err)
	}
}

// Rows of a collection must come together: a collection seen again would
// repeat a JSON key.
func TestDocumentRefusesACollectionSplitAcrossOthers(t *testing.T) {
	sec := stores.NewDocument(&bytes.Buffer{}, 0).Store("db")
	for _, c := range []string{"a", "b"} {
		if err := sec.Row(c, map[string]any{"id": 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sec.Row("a", map[string]any{"id": 2}); err == nil {
		t.Error("rows of a came after b's and were taken")
	}
}
