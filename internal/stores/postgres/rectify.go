package postgres

import (
	"fmt"
	"strings"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// rectificationSteps sets, in the subject's rows, the fields
// sqlcore.RectificationSteps names, one statement per collection. Rows
// already holding the value are skipped, so running it again changes nothing.
func (s *Store) rectificationSteps(live *liveSchema, rows sqlcore.Rows, req stores.Request) []step {
	return sqlcore.RectificationSteps(s.m, rows, req, func(c *datamap.Collection, fields []datamap.Field, keys []string) step {
		return rectifyRows(live, c, fields, keys, req)
	}, reportStep)
}

func rectifyRows(live *liveSchema, c *datamap.Collection, fields []datamap.Field, keys []string, req stores.Request) step {
	st := step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionRectify}}
	if len(keys) == 0 {
		return st
	}
	p := masking.NewParams(masking.Postgres)
	sets := make([]string, len(fields))
	for i, f := range fields {
		sets[i] = quote(f.Name) + " = " + correctedValue(live, c, f, req, p)
	}
	st.exec = []statement{{fmt.Sprintf("UPDATE %s SET %s WHERE %s", tableRef(c), strings.Join(sets, ", "), rowsToRectify(live, c, fields, keys, req, p)), p.Values()}}
	cp := masking.NewParams(masking.Postgres)
	st.count = []statement{{fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", tableRef(c), rowsToRectify(live, c, fields, keys, req, cp)), cp.Values()}}
	return st
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
