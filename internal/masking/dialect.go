package masking

import (
	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Dialect renders masking strategies as SQL expressions of one database, so an
// UPDATE masks every row of a set in one statement.
type Dialect interface {
	// Placeholder is the marker of the n-th (1-based) bound parameter.
	Placeholder(n int) string
	// Expr returns the expression whose value masks t with m. It refuses what
	// Check refuses, and keyed strategies without a key. Values and keys are
	// added to p as bound parameters, in the order their placeholders appear in
	// the expression, so positional placeholders (?) line up as long as the
	// caller renders the statement from left to right.
	Expr(m *privacyv1.Masking, t Target, key []byte, p *Params) (string, error)
}

// Target is the column being masked, as the statement refers to it.
type Target struct {
	Column ColumnInfo
	// Ref is the quoted column reference.
	Ref string
	// PrimaryKey is the quoted reference to the row's primary key, which uniqueEmail digests.
	PrimaryKey string
}

// Params collects the bound parameters of one statement.
type Params struct {
	dialect Dialect
	values  []any
}

// NewParams returns an empty parameter list for d.
func NewParams(d Dialect) *Params { return &Params{dialect: d} }

// Add binds v and returns its placeholder.
func (p *Params) Add(v any) string {
	p.values = append(p.values, v)
	return p.dialect.Placeholder(len(p.values))
}

// Values returns the bound values in placeholder order.
func (p *Params) Values() []any { return p.values }

// validate is what every dialect checks before rendering.
func validate(m *privacyv1.Masking, t Target, key []byte) error {
	if err := Check(m, t.Column); err != nil {
		return err
	}
	if NeedsKey(m) && len(key) == 0 {
		return errNoKey(m)
	}
	return nil
}

// randomDigits is how many decimal digits a random number may have in col.
func randomDigits(col ColumnInfo) int {
	if col.IntDigits <= 0 || col.IntDigits > randomMaxDigits {
		return randomMaxDigits
	}
	return col.IntDigits
}

// randomBound is 10^randomDigits: random numbers lie in [0, randomBound).
func randomBound(col ColumnInfo) int64 {
	b := int64(1)
	for range randomDigits(col) {
		b *= 10
	}
	return b
}

// randomTextLen is the length of random text that fits col.
func randomTextLen(col ColumnInfo) int {
	if col.MaxLength > 0 && col.MaxLength < randomTextLength {
		return col.MaxLength
	}
	return randomTextLength
}
