package storetest

import (
	"fmt"
	"slices"
	"time"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// The fixture is a small platform, described once and materialized by each
// engine as it can hold it (tables, keys, a processor's records):
//
//   - accounts (found by email or userId) own invoices, which own invoice
//     lines: a three-level chain. Accounts refer to the account that referred
//     them (a self-reference, setNull). Tickets refer to accounts by e-mail (a
//     text reference to a column other than the key); devices have binary
//     keys their tokens refer to.
//   - login_events are retained; the newsletter is found by either identity;
//     contacts by e-mail only; profiles are anonymized; orders carry dates
//     for exemptions.
//
// The subject is user 1, a_b@x.io. Its look-alikes differ by one character,
// case, an accent, a leading or trailing space, a suffix, a LIKE wildcard, a
// glob, a quote or a backslash — several equal to a_b@x.io under
// case-insensitive collations — or are user 11 next to user 1. Hostile
// contacts hold every glob, LIKE and quoting metacharacter.
//
// A collection an engine cannot hold (it needs an unsupported feature) is
// left out of that engine's fixture, and scenarios only expect what the
// collections present hold.

// ID is an account or user id. Engines write it as an integer, or with
// Suite.UUIDKeys as the uuid IDText returns.
type ID int

// Subject is the fixture's data subject, identities as the engine writes them.
func (f Fixture) Subject() map[string]string {
	return map[string]string{"email": "a_b@x.io", "userId": f.IDText(1)}
}

// IDText is how the engine writes id n: "11", or with UUIDKeys
// "a0eebc99-9c0b-4ef8-bb6d-000000000011" (lower case, as PostgreSQL writes uuids).
func (f Fixture) IDText(n ID) string {
	if f.UUIDKeys {
		return fmt.Sprintf("a0eebc99-9c0b-4ef8-bb6d-%012d", int(n))
	}
	return fmt.Sprint(int(n))
}

// MaskingKey is the fixture's masking key.
var MaskingKey = []byte("lethe test masking key")

// Extra is an unmapped object an engine adds to its schema for a scenario.
type Extra string

const (
	// Payments is a table payments(id, invoice_id) with the foreign key
	// payments_invoice_fk to invoices, holding a payment of invoice 10.
	Payments Extra = "payments"
	// Notes is a table notes(id, account_id) with the foreign key
	// notes_account_fk to accounts, ON DELETE CASCADE.
	Notes Extra = "notes"
	// LoginEventsFK is a foreign key login_events_user_fk from
	// login_events(user_id) to accounts.
	LoginEventsFK Extra = "login-events-fk"
)

// Fixture says what a scenario needs materialized.
type Fixture struct {
	// Accounts is the onErasure of accounts: delete (default) or anonymize.
	Accounts privacyv1.ErasureAction
	// LoginHistory adds 1000 login events of user 2 (see LoginHistory).
	LoginHistory bool
	// LargeSubject adds that many device tokens of user 1's phone (keys from
	// LargeSubjectFirstKey): a subject whose rows the manager must not list.
	LargeSubject int
	// Subscribers adds the subscribers collection: text primary keys.
	Subscribers bool
	// Extras are unmapped objects the schema also holds.
	Extras []Extra
	// Empty materializes nothing: the store opens on an empty database.
	Empty bool

	// UUIDKeys and the features left out are set by Run from the Suite.
	UUIDKeys    bool
	unsupported Features
}

// Has reports whether the fixture has extra e.
func (f Fixture) Has(e Extra) bool { return slices.Contains(f.Extras, e) }

// Collections are the fixture's collections the engine holds, in declaration
// order, each with its rows.
func (f Fixture) Collections() []Collection {
	var out []Collection
	for _, c := range f.all() {
		if f.holds(c) {
			out = append(out, c)
		}
	}
	return out
}

func (f Fixture) holds(c Collection) bool {
	for _, n := range c.Needs {
		if _, ok := f.unsupported[n]; ok {
			return false
		}
	}
	return true
}

// Spec is the logical data map of the collections the engine holds: no
// engine, tables or key patterns; engines fill those in.
func (f Fixture) Spec() privacyv1.DataStoreSpec {
	var spec privacyv1.DataStoreSpec
	for _, c := range f.Collections() {
		spec.Collections = append(spec.Collections, *c.Spec.DeepCopy())
	}
	return spec
}

// Collection is one collection of the fixture: its mapping, the features
// it needs, and its rows (values in Columns order: ID, string, []byte,
// int, bool, time.Time for timestamps, "YYYY-MM-DD" strings for dates,
// decimal strings for amounts, nil for NULL).
type Collection struct {
	Spec    privacyv1.Collection
	Needs   []Feature
	Columns []string
	Rows    [][]any
}

// Key is the primary key of row i, as fixture data.
func (c Collection) Key(i int) any {
	return c.Rows[i][slices.Index(c.Columns, string(c.Spec.PrimaryKey))]
}

// Value is column col of row i.
func (c Collection) Value(i int, col string) any {
	return c.Rows[i][slices.Index(c.Columns, col)]
}

func ptr[V any](v V) *V { return &v }

func day(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

// DeviceKey is device n's binary key: 16 bytes, n last (0xa1, 0xa2, 0xb1).
func DeviceKey(n byte) []byte {
	b := make([]byte, 16)
	b[15] = n
	return b
}

// newsletterID is newsletter row n's uuid key.
func newsletterID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// Look-alikes of the subject's e-mail in contacts, and hostile e-mails, by row id.
var (
	lookAlikeContacts = []struct {
		id    int
		email string
	}{
		{1, "a_b@x.io"}, {2, "axb@x.io"}, {3, "A_B@x.io"}, {4, "a_b@x.io "}, {5, "á_b@x.io"},
		{6, "a_b@x.io.au"}, {7, " a_b@x.io"}, {8, "a_b@x.io"},
	}
	hostileContacts = []struct {
		id    int
		email string
	}{
		{20, "*"}, {21, "?"}, {22, "[a-z]"}, {23, "[!a]"}, {24, "a*"}, {25, `\`}, {26, `\*`}, {27, `"q'`},
		{28, "%"}, {29, "_"}, {30, "é✓"}, {31, "x]y"}, {32, "a"}, {33, "b"}, {34, "ab"}, {35, "a%b@x.io"},
		{36, "o'brien@x.io"}, {37, "*?[a-z]@x.io"}, {38, `a\b@x.io`}, {39, "ünïcödé@x.io"}, {40, "[^a]"},
		{41, "a.b"}, {42, "a?b@x.io"},
	}
)

func (f Fixture) all() []Collection {
	accounts := f.Accounts
	if accounts == "" {
		accounts = privacyv1.ErasureDelete
	}
	var contacts [][]any
	for _, c := range lookAlikeContacts {
		name := "Look Alike"
		switch c.id {
		case 1:
			name = "Ada Subject"
		case 8:
			name = "Ada Again"
		}
		contacts = append(contacts, []any{c.id, c.email, name})
	}
	for _, c := range hostileContacts {
		contacts = append(contacts, []any{c.id, c.email, "Hostile"})
	}
	loginEvents := [][]any{
		{1000, ID(1), "192.0.2.1", day("2024-01-01"), nil},
		{1001, ID(2), "192.0.2.2", day("2024-01-01"), nil},
		{1002, ID(1), "192.0.2.1", day("2024-02-01"), nil},
		{1003, ID(11), "192.0.2.11", day("2024-01-01"), nil},
	}
	if f.LoginHistory {
		loginEvents = append(loginEvents, LoginHistory()...)
	}
	out := []Collection{
		{
			Spec: privacyv1.Collection{
				Name: "accounts", PrimaryKey: "id", OnErasure: accounts,
				Identity:   map[string]privacyv1.Identifier{"email": "email", "userId": "id"},
				References: []privacyv1.Reference{{Field: "referred_by", Collection: "accounts", OnParentErasure: privacyv1.ParentSetNull}},
				Fields: []privacyv1.Field{
					{Name: "email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}},
					{Name: "name", Category: "user.identity.name", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
					{Name: "phone", Category: "user.contact.phone", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskPartial, KeepLast: ptr(int32(2))}},
					{Name: "birth_date", Category: "user.identity.birthdate", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize, Granularity: "year"}},
					{Name: "avatar", Category: "user.identity.avatar", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskNullify}},
				},
			},
			Needs:   []Feature{References, AnyIdentity},
			Columns: []string{"id", "email", "name", "phone", "birth_date", "avatar", "referred_by"},
			Rows: [][]any{
				{ID(1), "a_b@x.io", "Ada Subject", "+33 6 12 34 56 78", "1990-05-17", []byte{0xde, 0xad, 0xbe, 0xef}, nil},
				{ID(2), "axb@x.io", "Look Alike", "+33 6 00 00 00 02", "1985-01-02", nil, ID(1)},
				{ID(3), "a%b@x.io", "Percent", "+33 6 00 00 00 03", nil, nil, ID(1)},
				{ID(4), "o'brien@x.io", "Quote", nil, nil, nil, ID(2)},
				{ID(5), "ünïcödé@x.io", "Unicode", nil, nil, nil, nil},
				{ID(6), "*?[a-z]@x.io", "Glob", nil, nil, nil, nil},
				{ID(7), `a\b@x.io`, "Backslash", nil, nil, nil, nil},
				{ID(11), "eleven@x.io", "Eleven", nil, nil, nil, nil},
			},
		},
		{
			Spec: privacyv1.Collection{
				Name: "invoices", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "account_id", Collection: "accounts"}},
				Fields: []privacyv1.Field{
					{Name: "billing_address", Category: "user.billing.address", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
					{Name: "amount", Category: "user.billing.amount"},
					{Name: "issued_at", Category: "user.billing.date"},
				},
			},
			Needs:   []Feature{References},
			Columns: []string{"id", "account_id", "billing_address", "amount", "issued_at"},
			Rows: [][]any{
				{10, ID(1), "1 Subject Street", "120.50", day("2014-01-10")},
				{11, ID(1), "1 Subject Street", "99.99", day("2024-06-15")},
				{12, ID(2), "2 Other Street", "10.00", day("2024-01-01")},
				{13, ID(3), "3 Other Street", "20.00", day("2024-01-01")},
				{14, ID(11), "11 Other Street", "30.00", day("2014-01-01")},
			},
		},
		{
			Spec: privacyv1.Collection{
				Name: "invoice_lines", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "invoice_id", Collection: "invoices"}},
				Fields:     []privacyv1.Field{{Name: "description", Category: "user.billing.item"}},
			},
			Needs:   []Feature{References},
			Columns: []string{"id", "invoice_id", "description"},
			Rows: [][]any{
				{100, 10, "hosting"}, {101, 10, "database"}, {102, 11, "hosting"},
				{103, 12, "hosting"}, {104, 13, "hosting"}, {105, 14, "hosting"},
			},
		},
		{
			Spec: privacyv1.Collection{
				Name: "login_events", PrimaryKey: "id", OnErasure: privacyv1.ErasureRetain,
				RetainReason: "security logs are kept for a year (legitimate interest)",
				Identity:     map[string]privacyv1.Identifier{"userId": "user_id"},
				Fields:       []privacyv1.Field{{Name: "ip", Category: "user.technical.ip"}},
			},
			Columns: []string{"id", "user_id", "ip", "at", "via_proxy"},
			Rows:    loginEvents,
		},
		{
			Spec: privacyv1.Collection{
				Name: "newsletter", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"email": "email", "userId": "user_id"},
				Fields:   []privacyv1.Field{{Name: "email", Category: "user.contact.email"}},
			},
			Needs:   []Feature{AnyIdentity},
			Columns: []string{"id", "email", "user_id"},
			Rows: [][]any{
				{newsletterID(1), "a_b@x.io", nil},
				{newsletterID(2), "axb@x.io", ID(2)},
				{newsletterID(3), "other@x.io", ID(1)},
				{newsletterID(4), "A_B@x.io", nil},
				{newsletterID(5), "a_b@x.io ", nil},
				{newsletterID(6), "á_b@x.io", nil},
				{newsletterID(7), "a_b@x.io ", ID(11)},
			},
		},
		{
			Spec: privacyv1.Collection{
				Name: "devices", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"userId": "user_id"},
				Fields:   []privacyv1.Field{{Name: "label", Category: "user.technical.device"}},
			},
			Columns: []string{"id", "user_id", "label"},
			Rows: [][]any{
				{DeviceKey(0xa1), ID(1), "phone"},
				{DeviceKey(0xa2), ID(2), "laptop"},
				{DeviceKey(0xb1), ID(11), "tablet"},
			},
		},
		{
			Spec: privacyv1.Collection{
				Name: "device_tokens", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "device_id", Collection: "devices"}},
				Fields:     []privacyv1.Field{{Name: "token", Category: "user.technical.token"}},
			},
			Needs:   []Feature{References},
			Columns: []string{"id", "device_id", "token"},
			Rows: append([][]any{
				{500, DeviceKey(0xa1), "tok-1"}, {501, DeviceKey(0xa2), "tok-2"},
				{502, DeviceKey(0xa1), "tok-3"}, {503, DeviceKey(0xb1), "tok-4"},
			}, largeSubjectTokens(f.LargeSubject)...),
		},
		{
			Spec: privacyv1.Collection{
				Name: "tickets", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				References: []privacyv1.Reference{{Field: "requester_email", Collection: "accounts", CollectionField: "email"}},
				Fields: []privacyv1.Field{
					{Name: "requester_email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
					{Name: "body", Category: "user.support.message"},
				},
			},
			Needs:   []Feature{References},
			Columns: []string{"id", "requester_email", "body"},
			Rows: [][]any{
				{1, "a_b@x.io", "my invoice"}, {2, "A_B@x.io", "upper"}, {3, "a_b@x.io ", "space"},
				{4, "axb@x.io", "look-alike"}, {5, nil, "anonymous"},
			},
		},
		{
			Spec: privacyv1.Collection{
				Name: "contacts", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"email": "email"},
				Fields: []privacyv1.Field{
					{Name: "email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
					{Name: "name", Category: "user.identity.name"},
				},
			},
			Columns: []string{"id", "email", "name"},
			Rows:    contacts,
		},
		{
			Spec: privacyv1.Collection{
				Name: "profiles", PrimaryKey: "user_id", OnErasure: privacyv1.ErasureAnonymize,
				Identity: map[string]privacyv1.Identifier{"userId": "user_id"},
				Fields: []privacyv1.Field{
					{Name: "email", Category: "user.contact.email", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskUniqueEmail}},
					{Name: "phone", Category: "user.contact.phone", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskPartial, KeepLast: ptr(int32(2))}},
					{Name: "name", Category: "user.identity.name", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskRedact}},
					{Name: "city", Category: "user.location.city", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskNullify}},
					{Name: "age", Category: "user.demographic.age", Masking: &privacyv1.Masking{Strategy: privacyv1.MaskGeneralize, Step: ptr(int64(10))}},
					{Name: "nickname", Category: "user.identity.nickname"},
				},
			},
			Needs:   []Feature{Anonymize},
			Columns: []string{"user_id", "email", "phone", "name", "city", "age", "nickname", "plan"},
			Rows: [][]any{
				{ID(1), "ada@example.com", "+33612345689", "Ada", "Paris", 37, "ada", "pro"},
				{ID(2), "bob@example.com", nil, "Bob", "Lyon", 52, "bob", "free"},
				{ID(11), "eleven@example.com", "+33600000011", "Eleven", nil, 23, nil, "pro"},
			},
		},
		{
			Spec: privacyv1.Collection{
				Name: "orders", PrimaryKey: "id", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"userId": "user_id"},
				Fields: []privacyv1.Field{
					{Name: "total", Category: "user.billing.amount"},
					{Name: "issued_at", Category: "user.billing.date"},
				},
			},
			Columns: []string{"id", "user_id", "total", "issued_at"},
			Rows: [][]any{
				// Keys 9, 20 and 100 sort otherwise as text: key order is numeric.
				{9, ID(1), "12.00", day("2024-06-15")},
				{20, ID(1), "30.00", day("2010-01-01")},
				{100, ID(1), "5.00", nil},
				{23, ID(2), "7.00", day("2010-01-01")},
			},
		},
	}
	if f.Subscribers {
		var rows [][]any
		for n := 1; n <= 30; n++ {
			user := "user"
			if n%2 == 1 {
				user = "User" // a case-insensitive collation sorts these among the others
			}
			rows = append(rows, []any{fmt.Sprintf("%s%d@x.io", user, n), day("2019-01-01")})
		}
		out = append(out, Collection{
			Spec: privacyv1.Collection{
				Name: "subscribers", PrimaryKey: "email", OnErasure: privacyv1.ErasureDelete,
				Identity: map[string]privacyv1.Identifier{"email": "email"},
				Fields:   []privacyv1.Field{{Name: "email", Category: "user.contact.email"}},
			},
			Columns: []string{"email", "since"},
			Rows:    rows,
		})
	}
	return out
}

// LargeSubjectFirstKey is the key of the first token Fixture.LargeSubject adds.
const LargeSubjectFirstKey = 1_000_000

// largeSubjectTokens are n device tokens of user 1's phone.
func largeSubjectTokens(n int) [][]any {
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = []any{LargeSubjectFirstKey + i, DeviceKey(0xa1), fmt.Sprintf("bulk-%d", i)}
	}
	return rows
}

// LoginHistory is 1000 login events of user 2, one a day from 2020-01-01,
// ids 9500 to 10499 (crossing from four digits to five, where text and
// numeric order differ); every fifth came through a proxy (via_proxy true,
// otherwise NULL).
func LoginHistory() [][]any {
	var rows [][]any
	start := day("2020-01-01")
	for g := 9500; g < 10500; g++ {
		var proxy any
		if g%5 == 0 {
			proxy = true
		}
		rows = append(rows, []any{g, ID(2), fmt.Sprintf("198.51.100.%d", g%250), start.AddDate(0, 0, g-9500), proxy})
	}
	return rows
}
