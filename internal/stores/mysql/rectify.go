package mysql

import (
	"fmt"
	"strings"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// rectificationSteps sets, in the subject's rows, the fields
// sqlcore.RectificationSteps names. Rows already holding the value are
// skipped, so running it again changes nothing. MySQL converts the value to
// the column's type; the strict session refuses a value that does not fit
// rather than truncating it.
func (s *Store) rectificationSteps(live *liveSchema, rows sqlcore.Rows, req stores.Request) []step {
	return sqlcore.RectificationSteps(s.m, rows, req, func(c *datamap.Collection, fields []datamap.Field, keys []string) step {
		return rectifyRows(live, c, fields, keys, req)
	}, reportStep)
}

func rectifyRows(live *liveSchema, c *datamap.Collection, fields []datamap.Field, keys []string, req stores.Request) step {
	st := step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionRectify}}
	changed := func(keyCond string, p *masking.Params) string {
		changes := make([]string, len(fields))
		for i, f := range fields {
			changes[i] = distinct(live.column(c, f.Name), quote(f.Name), p.Add(req.Rectification[f.Category]))
		}
		return keyCond + " AND (" + strings.Join(changes, " OR ") + ")"
	}
	st.exec, _ = changeByKeys(live, c, keys, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		sets := make([]string, len(fields))
		for i, f := range fields {
			sets[i] = quote(f.Name) + " = " + p.Add(req.Rectification[f.Category])
		}
		return fmt.Sprintf("UPDATE %s SET %s WHERE %s", tableRef(c), strings.Join(sets, ", "), changed(keyCond(p), p)), nil
	})
	st.count, _ = countByKeys(live, c, keys, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		return fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", tableRef(c), changed(keyCond(p), p)), nil
	})
	return st
}
