package v1alpha1

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// The admission rules on names and values, as Go code can apply them. They
// mirror the validation markers of the types (a test compares them with the
// generated CRDs in config/crd/bases), so code that builds objects, and the
// tests that fuzz quoting, can tell in advance what the API server accepts.
const (
	// IdentifierPattern is the pattern of collection names and of every
	// column name outside engine mongodb.
	IdentifierPattern = `^[A-Za-z_][A-Za-z0-9_$]*$`
	// IdentifierMaxLength is the longest identifier, in characters.
	IdentifierMaxLength = 63
	// FieldNamePattern is the schema's pattern of the Identifier type
	// (primaryKey, identity values, fields[].name, references[].field and
	// collectionField): an identifier of at most 63 characters, or a document
	// path whose segments (no $) are separated by dots, one of them ending
	// in [] at most. DataStoreSpec's rules then hold each engine to its own
	// (ValidateFieldName).
	FieldNamePattern = `^([A-Za-z_][A-Za-z0-9_$]{0,62}|[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})*(\[\](\.[A-Za-z_][A-Za-z0-9_]{0,62})*)?)$`
	// FieldNameMaxLength is the longest column name or document path, in characters.
	FieldNameMaxLength = 255
	// RetentionFieldPattern is the pattern of the fields of retention rules
	// (after.field, where[].field): an identifier of at most 63 characters,
	// or a document path outside arrays (segments without $ separated by
	// dots, no []). A RetentionPolicy does not know its store's engine, so
	// admission takes both; a run holds each rule to its store's engine
	// (ValidateRetentionField).
	RetentionFieldPattern = `^([A-Za-z_][A-Za-z0-9_$]{0,62}|[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})+)$`
	// RetentionFieldMaxLength is the longest field of a retention rule, in characters.
	RetentionFieldMaxLength = FieldNameMaxLength
	// TablePattern is the pattern of Collection.Table: an identifier, optionally schema-qualified.
	TablePattern = `^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$`
	// TableMaxLength is the longest Collection.Table, in characters.
	TableMaxLength = 127
	// IdentityTypePattern is the pattern of identity types (the keys of Identities and Collection.Identity).
	IdentityTypePattern = `^[a-z][A-Za-z0-9]{0,62}$`
	// CategoryPattern is the pattern of Category.
	CategoryPattern = `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`
	// CategoryMaxLength is the longest Category, in characters.
	CategoryMaxLength = 128
	// IdentityValueMaxLength is the longest inline IdentityValue, in characters.
	IdentityValueMaxLength = 1024
	// identityValuePattern is what an inline identity value must contain: a
	// character that is not whitespace in the RE2 sense of the CEL rule
	// (\S: not space, \t, \n, \f or \r).
	identityValuePattern = `\S`
)

var (
	identifierRE    = regexp.MustCompile(IdentifierPattern)
	fieldNameRE     = regexp.MustCompile(FieldNamePattern)
	retentionRE     = regexp.MustCompile(RetentionFieldPattern)
	tableRE         = regexp.MustCompile(TablePattern)
	identityTypeRE  = regexp.MustCompile(IdentityTypePattern)
	categoryRE      = regexp.MustCompile(CategoryPattern)
	identityValueRE = regexp.MustCompile(identityValuePattern)
)

// ValidateIdentifier returns nil when s is a valid Identifier: what admission
// accepts as a table, column or collection name. Such a name holds no quote,
// dot, space, semicolon or comment marker, so quoting it can never change the
// statement around it.
func ValidateIdentifier(s string) error {
	return validateString("identifier", s, identifierRE, IdentifierPattern, 1, IdentifierMaxLength)
}

// ValidateFieldName returns nil when admission accepts s as a column or
// field name (primaryKey, identity value, fields[].name, references[].field
// or collectionField) of a DataStore of engine: a document path for engine
// mongodb (owner.userId, addresses[].line1; no $), an identifier otherwise.
// arrays says whether the path may go through an array: not for primaryKey
// and collectionField.
func ValidateFieldName(engine Engine, s string, arrays bool) error {
	if engine != EngineMongoDB {
		return ValidateIdentifier(s)
	}
	if err := validateString("document path", s, fieldNameRE, FieldNamePattern, 1, FieldNameMaxLength); err != nil {
		return err
	}
	switch {
	case strings.Contains(s, "$"):
		return fmt.Errorf("document path %q holds a $: a path is never an operator", s)
	case !arrays && strings.Contains(s, "["):
		return fmt.Errorf("document path %q goes through an array, which a primary key or a referred field cannot", s)
	}
	return nil
}

// ValidateRetentionFieldSyntax returns nil when admission accepts s as the
// field of a retention rule (after.field, where[].field): a column name, or
// a document path outside arrays. Whether the store's engine takes it is
// ValidateRetentionField's question.
func ValidateRetentionFieldSyntax(s string) error {
	return validateString("retention field", s, retentionRE, RetentionFieldPattern, 1, RetentionFieldMaxLength)
}

// ValidateRetentionField returns nil when a sweep of a store of engine can
// run on s as the field of a retention rule: for engine mongodb a document
// path outside arrays without $ (meta.createdAt), for the other engines a
// column name. The error names the engine, since admission, which does not
// know it, let the field through.
func ValidateRetentionField(engine Engine, s string) error {
	if err := ValidateRetentionFieldSyntax(s); err != nil {
		return err
	}
	if engine == EngineMongoDB {
		return ValidateFieldName(engine, s, false)
	}
	if strings.Contains(s, ".") {
		return fmt.Errorf("%q is a document path, which only engine mongodb sweeps on; engine %s needs a column name (letters, digits, _ and $, not starting with a digit)", s, engine)
	}
	return ValidateIdentifier(s)
}

// ValidateForEngine returns nil when every field of the rule (after.field,
// where[].field) is one a sweep of a store of engine can run on
// (ValidateRetentionField); the error names the field.
func (r *RetentionRule) ValidateForEngine(engine Engine) error {
	if err := ValidateRetentionField(engine, string(r.After.Field)); err != nil {
		return fmt.Errorf("after.field: %w", err)
	}
	for i, w := range r.Where {
		if err := ValidateRetentionField(engine, string(w.Field)); err != nil {
			return fmt.Errorf("where[%d].field: %w", i, err)
		}
	}
	return nil
}

// ValidateTable returns nil when s is a valid Collection.Table (table or schema.table).
func ValidateTable(s string) error {
	return validateString("table", s, tableRE, TablePattern, 1, TableMaxLength)
}

// ValidateIdentityType returns nil when s is a valid identity type such as email or userId.
func ValidateIdentityType(s string) error {
	return validateString("identity type", s, identityTypeRE, IdentityTypePattern, 1, 0)
}

// ValidateCategory returns nil when s is a valid Category such as user.contact.email.
func ValidateCategory(s string) error {
	return validateString("category", s, categoryRE, CategoryPattern, 1, CategoryMaxLength)
}

// ValidateIdentityValue returns nil when admission accepts v as an inline
// identity value: at most IdentityValueMaxLength characters, not empty and
// not only whitespace. Errors never quote v: it is personal data.
//
// Admission's whitespace is RE2's (space, \t, \n, \f, \r): a value of only
// other white space (\v, U+00A0, U+3000, ...) or holding NUL passes admission
// and is refused by the controller instead (InvalidSubject).
func ValidateIdentityValue(v string) error {
	if n := utf8.RuneCountInString(v); n > IdentityValueMaxLength {
		return fmt.Errorf("identity value is %d characters long, more than %d", n, IdentityValueMaxLength)
	}
	if !identityValueRE.MatchString(v) {
		return fmt.Errorf("identity values must not be empty or only whitespace")
	}
	return nil
}

func validateString(what, s string, re *regexp.Regexp, pattern string, minLen, maxLen int) error {
	n := utf8.RuneCountInString(s)
	switch {
	case n < minLen:
		return fmt.Errorf("%s must not be empty", what)
	case maxLen > 0 && n > maxLen:
		return fmt.Errorf("%s is %d characters long, more than %d", what, n, maxLen)
	case !re.MatchString(s):
		return fmt.Errorf("%s %q does not match %s", what, s, pattern)
	}
	return nil
}
