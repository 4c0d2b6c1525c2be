package postgres

import (
	"fmt"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// rectificationSteps sets, in the subject's rows, every field in scope whose
// category is exactly a key of req.Rectification (a value is one field's
// value: user.contact must not overwrite both email and phone). Collections
// retained on erasure are not changed either ("cannot be changed or
// removed"); they are reported as retained. Rows already holding the value
// are skipped, so running it again changes nothing.
func (s *Store) rectificationSteps(live *liveSchema, rows subjectRows, req stores.Request) []step {
	var steps []step
	for _, c := range s.m.Collections {
		fields := rectifiedFields(c, req)
		if len(fields) == 0 {
			continue
		}
		keys := rows[c]
		if c.OnErasure == privacyv1.ErasureRetain {
			steps = append(steps, step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionRetain, Rows: int64(len(keys)), Reason: retainReason(c)}})
			continue
		}
		st := step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionRectify}}
		if len(keys) > 0 {
			p := masking.NewParams(masking.Postgres)
			sets := make([]string, len(fields))
			for i, f := range fields {
				sets[i] = quote(f.Name) + " = " + correctedValue(live, c, f, req, p)
			}
			st.exec = &statement{fmt.Sprintf("UPDATE %s SET %s WHERE %s", tableRef(c), strings.Join(sets, ", "), rowsToRectify(live, c, fields, keys, req, p)), p.Values()}
			cp := masking.NewParams(masking.Postgres)
			st.count = &statement{fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", tableRef(c), rowsToRectify(live, c, fields, keys, req, cp)), cp.Values()}
		}
		steps = append(steps, st)
	}
	return steps
}

func rectifiedFields(c *datamap.Collection, req stores.Request) []datamap.Field {
	var out []datamap.Field
	for _, f := range c.Fields {
		if _, ok := req.Rectification[f.Category]; ok && req.Scope.Covers(f.Category) {
			out = append(out, f)
		}
	}
	return out
}

// correctedValue binds the value as text and casts it to the column's type;
// PostgreSQL refuses a value that does not fit (too long, not a date) rather
// than truncating it.
func correctedValue(live *liveSchema, c *datamap.Collection, f datamap.Field, req stores.Request, p *masking.Params) string {
	return fmt.Sprintf("CAST(CAST(%s AS text) AS %s)", p.Add(req.Rectification[f.Category]), live.column(c, f.Name).castType)
}

func rowsToRectify(live *liveSchema, c *datamap.Collection, fields []datamap.Field, keys []string, req stores.Request, p *masking.Params) string {
	where := keyIn(live, c, keys, p)
	changes := make([]string, len(fields))
	for i, f := range fields {
		changes[i] = quote(f.Name) + " IS DISTINCT FROM " + correctedValue(live, c, f, req, p)
	}
	return where + " AND (" + strings.Join(changes, " OR ") + ")"
}
