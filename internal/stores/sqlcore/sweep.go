package sqlcore

import (
	"fmt"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// Sweep is a retention rule checked against the data map and the live table.
type Sweep struct {
	Rule      stores.SweepRule
	C         *datamap.Collection
	BatchSize int
	// Fields are what anonymize masks.
	Fields []datamap.Field
}

// DefaultSweepBatchSize is the batch size of rules that do not set one.
const DefaultSweepBatchSize = 5000

// CheckSweep refuses a rule the map or the live table cannot carry out: an
// unknown collection, a period field that is not a date or timestamp, an
// unknown where column, an anonymization with nothing to mask, an action
// other than delete or anonymize. table looks up a collection's live table.
func CheckSweep(m *datamap.Map, rule stores.SweepRule, table func(*datamap.Collection) Table) (Sweep, error) {
	c, ok := m.Get(rule.Collection)
	if !ok {
		return Sweep{}, fmt.Errorf("%w: the data map has no collection %q", stores.ErrInvalid, rule.Collection)
	}
	if c.PrimaryKey == "" {
		return Sweep{}, fmt.Errorf("%w: collection %q has no primary key to sweep by", stores.ErrInvalid, c.Name)
	}
	t := table(c)
	if col, ok := t.Column(rule.Field); !ok || !IsTemporal(col.Kind) {
		return Sweep{}, fmt.Errorf("%w: collection %q has no date or timestamp column %q for the retention period to run from", stores.ErrInvalid, c.Name, rule.Field)
	}
	for _, w := range rule.Where {
		if _, ok := t.Column(w.Field); !ok {
			return Sweep{}, fmt.Errorf("%w: collection %q has no column %q for the rule's where condition", stores.ErrInvalid, c.Name, w.Field)
		}
	}
	sw := Sweep{Rule: rule, C: c, BatchSize: rule.BatchSize}
	if sw.BatchSize <= 0 {
		sw.BatchSize = DefaultSweepBatchSize
	}
	switch rule.Action {
	case stores.ActionDelete:
	case stores.ActionAnonymize:
		for _, f := range c.Fields {
			if f.Masking != nil {
				sw.Fields = append(sw.Fields, f)
			}
		}
		if len(sw.Fields) == 0 {
			return Sweep{}, fmt.Errorf("%w: collection %q has no field with a masking strategy to anonymize", stores.ErrInvalid, c.Name)
		}
	default:
		return Sweep{}, fmt.Errorf("%w: a sweep deletes or anonymizes, not %q", stores.ErrInvalid, rule.Action)
	}
	return sw, nil
}

// IsTemporal reports whether a column of kind k holds a date or a timestamp.
func IsTemporal(k masking.Kind) bool {
	return k == masking.KindDate || k == masking.KindTimestamp || k == masking.KindTimestampTZ
}
