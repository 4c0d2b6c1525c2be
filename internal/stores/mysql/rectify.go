package mysql

import (
	"fmt"
	"strings"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
	"github.com/lethe-dev/lethe/internal/stores/sqlcore"
)

// rectificationSteps sets, in the subject's rows, every field in scope whose
// category is exactly a key of req.Rectification. Collections retained on
// erasure are not changed either ("cannot be changed or removed"); they are
// reported as retained. Rows already holding the value are skipped, so
// running it again changes nothing. MySQL converts the value to the column's
// type; the strict session refuses a value that does not fit rather than
// truncating it.
func (s *Store) rectificationSteps(live *liveSchema, rows sqlcore.Rows, req stores.Request) []step {
	var steps []step
	for _, c := range s.m.Collections {
		fields := sqlcore.RectifiedFields(c, req)
		if len(fields) == 0 {
			continue
		}
		if c.OnErasure == privacyv1.ErasureRetain {
			steps = append(steps, step{result: sqlcore.RetainResult(c, len(rows[c]))})
			continue
		}
		st := step{result: stores.CollectionResult{Collection: c.Name, Action: stores.ActionRectify}}
		changed := func(keyCond string, p *masking.Params) string {
			changes := make([]string, len(fields))
			for i, f := range fields {
				changes[i] = distinct(live.column(c, f.Name), quote(f.Name), p.Add(req.Rectification[f.Category]))
			}
			return keyCond + " AND (" + strings.Join(changes, " OR ") + ")"
		}
		st.exec, _ = changeByKeys(live, c, rows[c], func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
			sets := make([]string, len(fields))
			for i, f := range fields {
				sets[i] = quote(f.Name) + " = " + p.Add(req.Rectification[f.Category])
			}
			return fmt.Sprintf("UPDATE %s SET %s WHERE %s", tableRef(c), strings.Join(sets, ", "), changed(keyCond(p), p)), nil
		})
		st.count, _ = countByKeys(live, c, rows[c], func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
			return fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", tableRef(c), changed(keyCond(p), p)), nil
		})
		steps = append(steps, st)
	}
	return steps
}
