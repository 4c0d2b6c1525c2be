package scaffold_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/scaffold"
	"github.com/lethe-dev/lethe/internal/testdb"
)

var (
	createTable = regexp.MustCompile(`^CREATE TABLE (\w+)\.(\w+) \(`)
	labelled    = regexp.MustCompile(`^\s+(\w+) .*-- label: (\S+)$`)
)

// labels reads testdata/labelled.sql: "schema.table.column" → category ("none": not personal).
func labels(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("testdata/labelled.sql")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	table := ""
	for _, l := range strings.Split(string(raw), "\n") {
		if m := createTable.FindStringSubmatch(l); m != nil {
			table = m[1] + "." + m[2]
		} else if m := labelled.FindStringSubmatch(l); m != nil {
			out[table+"."+m[1]] = m[2]
		}
	}
	return out
}

type counts struct{ tp, fp, fn, labelled int }

func ratio(a, b int) float64 {
	if b == 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// TestScaffoldClassifierPrecisionRecall measures the classifier per category
// family on the labelled fixture (four schemas, a few hundred columns),
// without and with sampling, and prints the table docs/scaffold.md publishes.
func TestScaffoldClassifierPrecisionRecall(t *testing.T) {
	dsn := testdb.NewPostgres(t)
	raw, err := os.ReadFile("testdata/labelled.sql")
	if err != nil {
		t.Fatal(err)
	}
	setup, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	if _, err := setup.Exec(string(raw)); err != nil {
		t.Fatal(err)
	}
	truth := labels(t)
	ctx := context.Background()
	db, err := scaffold.Open(ctx, privacyv1.EnginePostgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	schema, err := db.Introspect(ctx, []string{"shop", "crm", "hr", "app"})
	if err != nil {
		t.Fatal(err)
	}
	if len(truth) < 300 || len(schema.Tables) < 40 {
		t.Fatalf("fixture too small: %d labelled columns, %d tables", len(truth), len(schema.Tables))
	}
	for _, sampled := range []int{0, 20} {
		var stats map[string]*scaffold.Stats
		if sampled > 0 {
			stats = map[string]*scaffold.Stats{}
			for _, tb := range schema.Tables {
				for _, c := range tb.Columns {
					if c.Kind == masking.KindText {
						st := &scaffold.Stats{}
						if _, err := db.Sample(ctx, tb, c.Name, sampled, st.Add); err != nil {
							t.Fatal(err)
						}
						stats[scaffold.ColumnKey(tb, c.Name)] = st
					}
				}
			}
		}
		d := scaffold.Build(schema, stats, scaffold.Options{Name: "labelled"})
		fam := map[string]*counts{}
		get := func(f string) *counts {
			if fam[f] == nil {
				fam[f] = &counts{}
			}
			return fam[f]
		}
		exact, personal := 0, 0
		var misses []string
		for key, label := range truth {
			g, ok := d.Guesses[key]
			if !ok {
				t.Fatalf("no guess for %s", key)
			}
			want, got := scaffold.Family(label), scaffold.Family(g.Category)
			if want != "none" {
				get(want).labelled++
				personal++
				if g.Category == label {
					exact++
				}
			}
			switch {
			case want == got:
				get(want).tp++
			default:
				get(want).fn++
				get(got).fp++
				misses = append(misses, fmt.Sprintf("%s: labelled %s, guessed %q (%s)", key, label, g.Category, g.Reason))
			}
		}
		var names []string
		for f := range fam {
			names = append(names, f)
		}
		sort.Strings(names)
		var b strings.Builder
		fmt.Fprintf(&b, "\nclassifier on %d labelled columns (%d personal), sample %d:\n", len(truth), personal, sampled)
		fmt.Fprintf(&b, "| family | labelled | precision | recall |\n|---|---:|---:|---:|\n")
		var tp, fp, fn int
		for _, f := range names {
			c := fam[f]
			if f == "none" {
				continue
			}
			tp, fp, fn = tp+c.tp, fp+c.fp, fn+c.fn
			fmt.Fprintf(&b, "| %s | %d | %.2f | %.2f |\n", f, c.labelled, ratio(c.tp, c.tp+c.fp), ratio(c.tp, c.tp+c.fn))
		}
		p, r := ratio(tp, tp+fp), ratio(tp, tp+fn)
		n := fam["none"]
		fmt.Fprintf(&b, "| **all personal** | %d | **%.2f** | **%.2f** |\n", personal, p, r)
		fmt.Fprintf(&b, "| none (not personal) | %d | %.2f | %.2f |\n", n.tp+n.fn, ratio(n.tp, n.tp+n.fp), ratio(n.tp, n.tp+n.fn))
		fmt.Fprintf(&b, "exact category on personal columns: %d/%d (%.2f)\n", exact, personal, ratio(exact, personal))
		fmt.Print(b.String())
		sort.Strings(misses)
		t.Logf("misclassified (sample %d):\n%s", sampled, strings.Join(misses, "\n"))
		// Floors that fail when the rules regress.
		if p < 0.85 || r < 0.80 {
			t.Errorf("sample %d: precision %.2f (floor 0.85), recall %.2f (floor 0.80) on personal families", sampled, p, r)
		}
		for _, f := range names {
			if c := fam[f]; f != "none" && c.labelled >= 5 && ratio(c.tp, c.tp+c.fp) < 0.6 {
				t.Errorf("sample %d: family %s precision %.2f < 0.6", sampled, f, ratio(c.tp, c.tp+c.fp))
			}
		}
	}
}
