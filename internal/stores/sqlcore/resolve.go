package sqlcore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lethe-dev/lethe/internal/datamap"
	"github.com/lethe-dev/lethe/internal/masking"
	"github.com/lethe-dev/lethe/internal/stores"
)

// The portable resolution: one query per collection and identity column, so
// each can use that column's index, and references followed by reading the
// parent rows' values and matching them exactly (Dialect.Match) in the
// children. Keys are sorted in Go, so no ORDER BY draws the optimizer away
// from the index of the condition's column.

var _ Resolver = (*Session)(nil)

// Resolve finds the subject's rows (see Resolver).
func (s *Session) Resolve(ctx context.Context, subject map[string]string) (Rows, error) {
	return s.walk(ctx, func(c *datamap.Collection) ([]string, error) { return s.byIdentity(ctx, c, subject) }, s.referring)
}

// Descend finds the rows below from's rows of keys (see Resolver).
func (s *Session) Descend(ctx context.Context, from *datamap.Collection, keys []string) (Rows, error) {
	return s.DescendWith(ctx, from, keys, s.referring)
}

// DescendWith is Descend with an engine's own statement for the rows of a
// reference's child that refer to some parent rows (locking them when the
// session locks): the walk is the resolution's, started from keys instead of
// identities.
func (s *Session) DescendWith(ctx context.Context, from *datamap.Collection, keys []string,
	referring func(ctx context.Context, e *datamap.Edge, parentKeys []string) ([]string, error)) (Rows, error) {
	return s.walk(ctx, func(c *datamap.Collection) ([]string, error) {
		if c == from {
			return keys, nil
		}
		return nil, nil
	}, referring)
}

// walk finds rows parents first: in each collection the rows own finds, and
// the rows whose cascade reference points at rows found in the parent.
func (s *Session) walk(ctx context.Context, own func(*datamap.Collection) ([]string, error),
	referring func(ctx context.Context, e *datamap.Edge, parentKeys []string) ([]string, error)) (Rows, error) {
	rows := Rows{}
	for _, c := range s.Map.Collections {
		if s.Selecting(c) {
			continue
		}
		keys, err := own(c)
		if err != nil {
			return nil, err
		}
		for _, e := range c.Parents {
			if len(rows[e.Parent]) == 0 {
				continue
			}
			children, err := referring(ctx, e, rows[e.Parent])
			if err != nil {
				return nil, err
			}
			keys = append(keys, children...)
		}
		if keys = s.distinctSorted(c, keys); len(keys) > 0 {
			rows[c] = keys
		}
	}
	return rows, nil
}

// byIdentity selects c's rows matching any identity of the subject it maps.
func (s *Session) byIdentity(ctx context.Context, c *datamap.Collection, subject map[string]string) ([]string, error) {
	var keys []string
	types, columns := c.IdentityColumns(subject)
	for i, t := range types {
		p := s.Params()
		cond, ok := s.Dialect.Match(s.Schema.Column(c, columns[i]), s.quote(columns[i]), []string{subject[t]}, masking.KindText, p)
		if !ok {
			continue
		}
		found, err := s.selectKeys(ctx, c, cond, p)
		if err != nil {
			return nil, s.dbError(fmt.Sprintf("finding the subject's rows in collection %q", c.Name), err)
		}
		keys = append(keys, found...)
	}
	return keys, nil
}

// referring selects the rows of e's child that refer to the given parent rows.
func (s *Session) referring(ctx context.Context, e *datamap.Edge, parentKeys []string) ([]string, error) {
	if len(parentKeys) == 0 {
		return nil, nil
	}
	values, err := s.fieldValues(ctx, e.Parent, e.ParentField, parentKeys)
	if err != nil {
		return nil, err
	}
	from := s.Schema.Column(e.Parent, e.ParentField).Kind
	childCol := s.Schema.Column(e.Child, e.ChildField)
	var keys []string
	for _, batch := range KeyBatches(s.Dialect, values) {
		p := s.Params()
		cond, ok := s.matchReference(e, childCol, s.quote(e.ChildField), batch, from, p)
		if !ok {
			continue
		}
		found, err := s.selectKeys(ctx, e.Child, cond, p)
		if err != nil {
			return nil, s.dbError(fmt.Sprintf("finding the rows of collection %q that refer to %q", e.Child.Name, e.Parent.Name), err)
		}
		keys = append(keys, found...)
	}
	return keys, nil
}

// matchReference selects the rows whose ref, one end of reference e, equals
// one of values: as the foreign key compares them where the database links e
// (LinkedSchema, LinkMatcher), exactly otherwise.
func (s *Session) matchReference(e *datamap.Edge, col Column, ref string, values []string, from masking.Kind, p *masking.Params) (string, bool) {
	if lm, ok := s.Dialect.(LinkMatcher); ok {
		if ls, ok := s.Schema.(LinkedSchema); ok && ls.Linked(e) {
			return lm.MatchLinked(col, ref, values, from, p)
		}
	}
	return s.Dialect.Match(col, ref, values, from, p)
}

// fieldValues are the distinct values of field in c's rows of keys: the keys
// themselves when field is the primary key column.
func (s *Session) fieldValues(ctx context.Context, c *datamap.Collection, field string, keys []string) ([]string, error) {
	col := s.Schema.Column(c, field)
	if col.Name == s.primaryKey(c).Name {
		return keys, nil
	}
	ref := s.quote(field)
	var values []string
	for _, batch := range KeyBatches(s.Dialect, keys) {
		p := s.Params()
		q := fmt.Sprintf("SELECT DISTINCT %s FROM %s WHERE %s AND %s IS NOT NULL",
			s.Dialect.KeyText(col, ref), s.tableRef(c), s.KeyIn(c, batch, p), ref)
		found, err := s.QueryKeys(ctx, Statement{q, p.Values()})
		if err != nil {
			return nil, s.dbError(fmt.Sprintf("reading field %q of collection %q", field, c.Name), err)
		}
		values = append(values, found...)
	}
	return values, nil
}

// selectKeys returns the keys of c's rows meeting where, locking them when
// the session locks.
func (s *Session) selectKeys(ctx context.Context, c *datamap.Collection, where string, p *masking.Params) ([]string, error) {
	q := fmt.Sprintf("SELECT %s FROM %s WHERE %s", s.Dialect.KeyText(s.primaryKey(c), s.quote(c.PrimaryKey)), s.tableRef(c), where)
	if s.Lock {
		q += " FOR UPDATE"
	}
	return s.QueryKeys(ctx, Statement{q, p.Values()})
}

// distinctSorted removes the keys found twice (by identity and by reference)
// and sorts them as SortKeys does.
func (s *Session) distinctSorted(c *datamap.Collection, keys []string) []string {
	if len(keys) == 0 {
		return nil
	}
	seen := make(map[string]bool, len(keys))
	out := keys[:0:0]
	for _, k := range keys {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	SortKeys(s.primaryKey(c).Kind, out)
	return out
}

// ChildrenOf returns which of the child keys among refer through e to the
// parent keys.
func (s *Session) ChildrenOf(ctx context.Context, e *datamap.Edge, parentKeys, among []string) ([]string, error) {
	referring, err := s.referring(ctx, e, parentKeys)
	if err != nil {
		return nil, err
	}
	return Intersect(among, referring), nil
}

// ParentsOf returns which of the parent keys among the child keys refer to
// through e. It reads without locking: the rows among were locked as the
// subject's when Apply resolved them.
func (s *Session) ParentsOf(ctx context.Context, e *datamap.Edge, childKeys, among []string) ([]string, error) {
	values, err := s.fieldValues(ctx, e.Child, e.ChildField, childKeys)
	if err != nil {
		return nil, err
	}
	from := s.Schema.Column(e.Child, e.ChildField).Kind
	pk, parentCol := s.primaryKey(e.Parent), s.Schema.Column(e.Parent, e.ParentField)
	var keys []string
	for _, parents := range KeyBatches(s.Dialect, among) {
		for _, batch := range KeyBatches(s.Dialect, values) {
			p := s.Params()
			where := s.KeyIn(e.Parent, parents, p)
			cond, ok := s.matchReference(e, parentCol, s.quote(e.ParentField), batch, from, p)
			if !ok {
				continue
			}
			q := fmt.Sprintf("SELECT %s FROM %s WHERE %s AND %s", s.Dialect.KeyText(pk, s.quote(e.Parent.PrimaryKey)), s.tableRef(e.Parent), where, cond)
			found, err := s.QueryKeys(ctx, Statement{q, p.Values()})
			if err != nil {
				return nil, s.dbError(fmt.Sprintf("finding the rows of collection %q that held rows of %q are found through", e.Parent.Name, e.Child.Name), err)
			}
			keys = append(keys, found...)
		}
	}
	return s.distinctSorted(e.Parent, keys), nil
}

// Exempted returns the rows among whose exemption field is after the cutoff,
// and the oldest and newest of those times.
func (s *Session) Exempted(ctx context.Context, c *datamap.Collection, ex stores.Exemption, among []string) ([]string, Span, error) {
	if col := s.Schema.Column(c, ex.Field); !IsTemporal(col.Kind) {
		return nil, Span{}, fmt.Errorf("%w: retention rule %s: collection %q has no date or timestamp column %q", stores.ErrInvalid, ex.Rule, c.Name, ex.Field)
	}
	pk, field := s.quote(c.PrimaryKey), s.quote(ex.Field)
	var keys []string
	var key string
	var span Span
	var at time.Time
	for _, batch := range KeyBatches(s.Dialect, among) {
		p := s.Params()
		// The table's own columns (t.): a bare name may be the text output column.
		q := fmt.Sprintf("SELECT %s, t.%s FROM %s AS t WHERE %s AND t.%[2]s > %[5]s ORDER BY t.%[6]s",
			s.Dialect.KeyText(s.primaryKey(c), "t."+pk), field, s.tableRef(c), s.KeyIn(c, batch, p), p.Add(ex.Cutoff.UTC()), pk)
		err := s.Tx.Query(ctx, Statement{q, p.Values()}, []any{&key, &at}, func() error {
			keys = append(keys, key)
			span.Add(at)
			return nil
		})
		if err != nil {
			return nil, Span{}, s.dbError(fmt.Sprintf("finding exempted rows of collection %q", c.Name), err)
		}
	}
	return keys, span, nil
}

// Span is the oldest and newest of some times.
type Span struct{ Oldest, Newest time.Time }

// Add widens the span to t.
func (sp *Span) Add(t time.Time) {
	if sp.Oldest.IsZero() || t.Before(sp.Oldest) {
		sp.Oldest = t
	}
	if t.After(sp.Newest) {
		sp.Newest = t
	}
}

// ClearReferences finds (and, in Apply, locks) the rows referring to the
// parent rows, then clears their field by primary key (see Resolver).
func (s *Session) ClearReferences(ctx context.Context, e *datamap.Edge, parentKeys, spared []string) (Step, error) {
	referring, err := s.referring(ctx, e, parentKeys)
	if err != nil {
		return Step{}, err
	}
	keys := Without(s.distinctSorted(e.Child, referring), spared)
	st := Step{Result: stores.CollectionResult{Collection: e.Child.Name, Action: stores.ActionSetNull, Rows: int64(len(keys)), Reason: SetNullReason(e)}}
	st.Exec, _ = s.changeByKeys(e.Child, keys, func(keyCond func(*masking.Params) string, p *masking.Params) (string, error) {
		return fmt.Sprintf("UPDATE %s SET %s = NULL WHERE %s", s.tableRef(e.Child), s.quote(e.ChildField), keyCond(p)), nil
	})
	return st, nil
}

// SortKeys orders keys as an integer primary key orders them (keys are then
// canonical decimal text), and bytewise otherwise, so results are stable.
func SortKeys(kind masking.Kind, keys []string) {
	if kind != masking.KindInteger {
		slices.Sort(keys)
		return
	}
	slices.SortFunc(keys, compareIntegerText)
}

func compareIntegerText(a, b string) int {
	negA, negB := strings.HasPrefix(a, "-"), strings.HasPrefix(b, "-")
	if negA != negB {
		if negA {
			return -1
		}
		return 1
	}
	c := cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
	if negA {
		return -c
	}
	return c
}
