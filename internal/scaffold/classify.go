package scaffold

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
)

// Confidence of a guess.
type Confidence string

const (
	High   Confidence = "high"
	Medium Confidence = "medium"
	Low    Confidence = "low"
)

// Guess is what the classifier thinks a column holds.
type Guess struct {
	// Category is the suggested category; "" when the column does not look
	// personal or could not be classified.
	Category string
	// Unknown: the column could not be classified; it is listed for review.
	Unknown    bool
	Confidence Confidence
	// Reason says why, in words (never a value).
	Reason string
}

// Family is the second segment of a category (contact, financial,
// device...), or "none". Precision and recall are measured per family.
func Family(category string) string {
	if category == "" || category == "none" {
		return "none"
	}
	if category == string(privacyv1.CategoryCustomerContent) {
		return "content"
	}
	parts := strings.Split(category, ".")
	if len(parts) < 2 {
		return parts[0]
	}
	return parts[1]
}

// Tokens splits a column or table name into lower-case words: snake_case,
// kebab-case and camelCase.
func Tokens(name string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case r == '_' || r == '-' || r == ' ' || r == '.' || r == '$':
			flush()
		case unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return out
}

// name is a column name as the rules see it.
type name struct {
	tokens []string
	joined string // the tokens without separators
	table  []string
}

func (n name) has(words ...string) bool {
	for _, w := range words {
		if slices.Contains(n.tokens, w) {
			return true
		}
	}
	return false
}

// contains: the joined name contains one of subs.
func (n name) contains(subs ...string) bool {
	for _, s := range subs {
		if strings.Contains(n.joined, s) {
			return true
		}
	}
	return false
}

func (n name) is(joined ...string) bool { return slices.Contains(joined, n.joined) }

func (n name) tableHas(words ...string) bool {
	for _, t := range n.table {
		t = strings.TrimSuffix(t, "s")
		for _, w := range words {
			if t == w || t == w+"e" { // addresses → addresse
				return true
			}
		}
	}
	return false
}

// personTables are table words whose rows are people.
var personTables = []string{"user", "account", "customer", "member", "people", "person", "contact", "employee",
	"staff", "patient", "student", "client", "guest", "author", "driver", "passenger", "profile", "lead",
	"subscriber", "recipient", "applicant", "candidate", "beneficiary", "traveler", "traveller", "owner",
	"donor", "volunteer", "attendee", "participant", "visitor", "buyer", "seller", "shopper", "learner",
	"teacher", "doctor", "physician", "tenant_user", "signup", "registration", "emergency_contact", "dependent", "guardian"}

type kinds []masking.Kind

var (
	textual   = kinds{masking.KindText}
	textOrNum = kinds{masking.KindText, masking.KindInteger, masking.KindDecimal}
	anyKind   = kinds(nil)
)

// rule is one classification rule; rules are tried in order.
type rule struct {
	category string
	conf     Confidence
	kinds    kinds
	why      string
	match    func(n name) bool
}

var rules = []rule{
	// Device identifiers before credentials (device_token) and addresses (mac_address).
	{"user.device.ip_address", High, kinds{masking.KindText, masking.KindOther, masking.KindBytes, masking.KindInteger}, "the name says IP address", func(n name) bool {
		return n.has("ip", "ipv4", "ipv6", "ipaddr", "ipaddress") || n.contains("ipaddress", "remoteaddr", "clientaddr")
	}},
	{"user.device.id", Medium, anyKind, "the name says device identifier", func(n name) bool {
		return (n.has("device") && n.has("id", "token", "uuid", "identifier", "fingerprint", "serial")) ||
			n.has("imei", "idfa", "gaid", "udid") || n.is("macaddress", "advertisingid", "pushtoken", "deviceid", "fcmtoken", "apnstoken") ||
			(n.has("push", "fcm", "apns") && n.has("token"))
	}},
	{"user.device.browser", High, textual, "the name says user agent / browser", func(n name) bool {
		return n.contains("useragent") || n.has("browser", "ua")
	}},
	{"user.device.language", Medium, textual, "the name says language or locale", func(n name) bool {
		return n.has("locale", "language", "lang") || n.contains("acceptlanguage")
	}},
	// Credentials.
	{"user.authorization.credentials", High, kinds{masking.KindText, masking.KindBytes}, "the name says password or secret", func(n name) bool {
		return n.has("password", "passwd", "pwd", "passphrase", "salt") || n.contains("passwordhash", "encryptedpassword") ||
			(n.has("secret") && !n.has("question")) || n.has("apikey") || (n.has("api") && n.has("key"))
	}},
	{"user.authorization.credentials", Medium, kinds{masking.KindText, masking.KindBytes, masking.KindUUID}, "the name says an authentication token", func(n name) bool {
		return n.has("token") && n.has("auth", "refresh", "reset", "access", "session", "remember", "confirmation", "verification", "invite", "magic", "recovery", "oauth")
	}},
	// Government identifiers.
	{"user.government_id", High, textOrNum, "the name says a government identifier", func(n name) bool {
		return n.has("ssn", "passport", "nin", "nir", "insee") || n.contains("socialsecurity", "nationalid", "nationalidentification", "driverslicense", "driverlicense", "driverslicence", "drivinglicence", "drivinglicense", "idcard", "identitycard", "identitynumber")
	}},
	// Financial.
	{"user.financial.bank_account", High, textOrNum, "the name says bank account", func(n name) bool {
		return n.has("iban", "bic", "swift") || n.contains("bankaccount", "accountnumber", "routingnumber", "sortcode")
	}},
	{"user.financial.payment.card", High, kinds{masking.KindText, masking.KindInteger}, "the name says payment card", func(n name) bool {
		return (n.has("card", "cc") && n.has("number", "num", "last4", "brand", "exp", "expiry", "expiration", "holder", "pan", "fingerprint", "month", "year", "type", "bin")) ||
			n.has("pan", "cvv", "cvc", "last4", "cardholder", "cardnumber") || n.contains("lastfour", "cardholder", "cardnumber") ||
			(n.has("exp", "expiry") && n.has("month", "year") && n.tableHas("card", "payment", "payment_method"))
	}},
	{"user.financial.payment.processor_id", Medium, textual, "the name says a payment processor's customer id", func(n name) bool {
		// The processor's own name (processor: "stripe") is not personal: its id of the customer is.
		return n.has("stripe", "paypal", "braintree", "adyen", "mollie", "processor", "gateway", "paddle", "chargebee", "recurly") &&
			n.has("id", "customer", "ref", "reference", "token", "account", "key", "cus") && !n.has("status", "fee")
	}},
	{"user.financial.vat_number", High, textual, "the name says VAT number", func(n name) bool { return n.has("vat") && !n.has("rate", "amount", "total") }},
	{"user.financial.tax_id", High, textual, "the name says tax identifier", func(n name) bool {
		return n.has("tin", "siret", "siren", "ein") || (n.has("tax") && n.has("id", "number", "code", "identifier", "no"))
	}},
	{"user.financial.billing_name", High, textual, "the name says billing name", func(n name) bool {
		return n.has("billing", "billed", "invoice", "bill") && n.contains("name") || n.is("legalname")
	}},
	{"user.financial.billing_address", High, textual, "the name says billing address", func(n name) bool {
		return n.has("billing", "billed", "invoice", "bill") && n.has("address", "street", "zip", "postal", "postcode", "city", "addr", "line1", "line2")
	}},
	{"user.financial.income", Medium, kinds{masking.KindInteger, masking.KindDecimal, masking.KindFloat}, "the name says salary or income", func(n name) bool {
		return n.has("salary", "income", "wage", "wages", "compensation", "payroll")
	}},
	// Contact.
	{"user.contact.email", High, textual, "the name says e-mail", func(n name) bool {
		return (n.has("email", "mail", "emailaddress") || n.contains("email")) &&
			!n.has("template", "subject", "body", "provider", "type", "status", "format", "kind", "domain", "count", "frequency", "preference", "preferences", "settings", "campaign", "server", "host", "sent")
	}},
	{"user.contact.phone", High, textOrNum, "the name says phone number", func(n name) bool {
		return (n.has("phone", "mobile", "telephone", "tel", "msisdn", "fax", "cellphone", "whatsapp") || n.contains("phonenumber", "mobilenumber")) &&
			!n.has("model", "type", "verified", "os", "brand")
	}},
	{"user.contact.name", High, textual, "the name says a person's name", func(n name) bool {
		return n.is("firstname", "lastname", "fullname", "givenname", "familyname", "middlename", "maidenname", "surname", "forename", "displayname", "nickname", "preferredname", "contactname", "recipientname", "recipient", "legalfirstname", "legallastname", "personname", "fname", "lname", "nameofbeneficiary", "beneficiaryname", "emergencycontactname", "parentname", "guardianname", "spousename", "authorname", "customername", "username_full", "holdername", "shiptoname", "shippingname") ||
			n.has("surname", "forename", "firstname", "lastname")
	}},
	{"user.contact.company", Medium, textual, "the name says company", func(n name) bool {
		return n.has("company", "employer", "organization", "organisation", "org", "business") && (n.has("name") || len(n.tokens) == 1)
	}},
	{"user.contact.address", High, textual, "the name says postal address", func(n name) bool {
		return n.has("address", "street", "addr", "postcode", "zipcode", "zip", "postal", "housenumber") || n.contains("addressline", "streetaddress", "postalcode", "housenumber")
	}},
	// Location.
	{"user.location.city", Medium, textual, "the name says city", func(n name) bool { return n.has("city", "town", "municipality", "locality") }},
	{"user.location.region", Low, textual, "the name says region or province", func(n name) bool { return n.has("region", "province", "county") }},
	{"user.location.country", Low, textual, "the name says country", func(n name) bool { return n.has("country") }},
	{"user.location.coordinates", Medium, kinds{masking.KindFloat, masking.KindDecimal, masking.KindOther, masking.KindText}, "the name says geographic coordinates", func(n name) bool {
		return n.has("latitude", "longitude", "lat", "lng", "lon", "geo", "geolocation", "coordinates", "geom", "geopoint", "gps")
	}},
	// Demographic and health.
	{"user.demographic.date_of_birth", High, kinds{masking.KindDate, masking.KindTimestamp, masking.KindTimestampTZ, masking.KindText}, "the name says date of birth", func(n name) bool {
		return n.has("dob", "birthday", "birthdate", "birth", "born")
	}},
	{"user.demographic.gender", High, kinds{masking.KindText, masking.KindOther, masking.KindInteger}, "the name says gender", func(n name) bool { return n.has("gender", "sex", "pronouns") }},
	{"user.demographic.age", Medium, kinds{masking.KindInteger, masking.KindDecimal}, "the name says age", func(n name) bool { return n.is("age", "ageyears", "agerange") }},
	{"user.demographic.background", Medium, anyKind, "the name says nationality, ethnicity, religion or marital status", func(n name) bool {
		return n.has("nationality", "ethnicity", "religion", "marital", "citizenship", "race")
	}},
	{"user.health", Medium, anyKind, "the name says health data", func(n name) bool {
		return n.has("diagnosis", "allergies", "allergy", "medication", "medications", "medical", "health", "disability", "bloodtype", "symptoms", "condition") || n.contains("bloodtype")
	}},
	// Accounts.
	{"user.account.username", Medium, textual, "the name says user name or handle", func(n name) bool {
		return n.is("username", "login", "handle", "screenname", "nick", "userhandle", "loginname", "twitterhandle", "githubhandle", "slackhandle") || (n.has("social", "twitter", "github", "instagram", "linkedin") && n.has("handle", "username", "url"))
	}},
	// Free text and pictures.
	{"user.content", Medium, textual, "free text a person writes", func(n name) bool {
		return n.has("bio", "biography", "signature", "message", "body", "comment", "comments", "review", "feedback", "note", "notes", "memo", "remarks", "answer", "essay", "transcript", "aboutme") || n.is("about", "aboutme", "text", "content", "motivation", "coverletter", "reason")
	}},
	{"user.content.photo", Medium, kinds{masking.KindText, masking.KindBytes}, "the name says photo or avatar", func(n name) bool {
		return n.has("avatar", "photo", "picture", "selfie", "headshot", "portrait") || n.contains("profileimage", "profilepic")
	}},
}

// notPersonal are names of columns that do not hold personal data.
var notPersonal = []string{"id", "uuid", "guid", "status", "state", "type", "kind", "amount", "total", "subtotal", "price", "cost",
	"currency", "quantity", "qty", "sku", "count", "version", "position", "rank", "priority", "sort", "order", "enabled", "active",
	"slug", "code", "title", "level", "weight", "score", "rating", "tax", "rate", "discount", "percent", "category", "tags", "tag",
	"color", "size", "duration", "seconds", "minutes", "hours", "days", "stock", "revision", "visibility", "channel", "source",
	"plan", "tier", "role", "scope", "sequence", "label", "icon", "unit", "method", "flag", "mode", "format", "locale_default", "event", "action"}

// Classify guesses what col of t holds. key: the column is the table's
// primary key or a foreign key column. stats: what a sample of its values
// showed (nil when not sampled).
func Classify(t *Table, col Column, key bool, stats *Stats) Guess {
	n := name{tokens: Tokens(col.Name), table: Tokens(t.Name)}
	n.joined = strings.Join(n.tokens, "")
	g := classifyName(n, col, key)
	return withSample(g, col, stats)
}

func classifyName(n name, col Column, key bool) Guess {
	if key {
		return Guess{Confidence: High, Reason: "a key column: it links rows, it is mapped as a primary key or a reference"}
	}
	if strings.EqualFold(col.Type, "inet") || strings.EqualFold(col.Type, "cidr") || strings.HasPrefix(strings.ToLower(col.Type), "inet6") || strings.HasPrefix(strings.ToLower(col.Type), "inet4") {
		return Guess{Category: "user.device.ip_address", Confidence: High, Reason: "the column's type is " + col.Type}
	}
	personTable := n.tableHas(personTables...)
	for _, r := range rules {
		if !r.match(n) {
			continue
		}
		if r.kinds != nil && !slices.Contains(r.kinds, col.Kind) {
			continue // email_verified boolean, login_count integer: about the data, not the data
		}
		conf := r.conf
		if !personTable && conf == High && r.category != "user.contact.email" && r.category != "user.device.ip_address" {
			conf = Medium
		}
		return Guess{Category: r.category, Confidence: conf, Reason: fmt.Sprintf("%s (%s)", r.why, col.Kind)}
	}
	if n.is("name") {
		if personTable {
			return Guess{Category: "user.contact.name", Confidence: Medium, Reason: "a name column in a table of people (" + strings.Join(n.table, "_") + ")"}
		}
		if n.tableHas("company", "organization", "organisation", "employer", "business") {
			return Guess{Category: "user.contact.company", Confidence: Low, Reason: "the name of a company"}
		}
		return Guess{Confidence: Low, Reason: "a name column of a table that does not look like people"}
	}
	if n.has("description", "summary", "details") && personTable {
		return Guess{Category: "user.content", Confidence: Low, Reason: "free text in a table of people"}
	}
	for _, w := range n.tokens {
		if slices.Contains(notPersonal, w) {
			return Guess{Confidence: Medium, Reason: fmt.Sprintf("%q usually describes the record, not a person", w)}
		}
	}
	if n.tokens[len(n.tokens)-1] == "at" || n.tokens[len(n.tokens)-1] == "on" || n.has("created", "updated", "deleted", "modified", "timestamp") {
		return Guess{Confidence: Medium, Reason: "a record timestamp"}
	}
	if n.tokens[0] == "is" || n.tokens[0] == "has" || col.Kind == masking.KindBoolean {
		return Guess{Confidence: Medium, Reason: "a flag"}
	}
	switch col.Kind {
	case masking.KindText, masking.KindOther, masking.KindBytes:
		return Guess{Unknown: true, Confidence: Low, Reason: fmt.Sprintf("no rule matches this %s column; review it", col.Type)}
	}
	return Guess{Confidence: Low, Reason: fmt.Sprintf("a %s column no rule matches", col.Kind)}
}

// patternCategory is the category a dominant pattern suggests.
var patternCategory = map[Pattern]string{
	PatternEmail: "user.contact.email", PatternPhone: "user.contact.phone", PatternIPv4: "user.device.ip_address",
	PatternIPv6: "user.device.ip_address", PatternIBAN: "user.financial.bank_account", PatternCard: "user.financial.payment.card",
}

// expected are the patterns whose absence contradicts a category.
var expected = map[string][]Pattern{
	"user.contact.email": {PatternEmail}, "user.device.ip_address": {PatternIPv4, PatternIPv6},
	"user.financial.bank_account": {PatternIBAN},
}

func withSample(g Guess, col Column, s *Stats) Guess {
	if s == nil || s.Sampled == 0 {
		return g
	}
	p, dominant := s.Dominant()
	switch {
	case dominant && g.Category == patternCategory[p]:
		g.Confidence = High
		g.Reason += "; " + s.Describe(p)
	case dominant && g.Category == "" && !strings.Contains(g.Reason, "key column"):
		g = Guess{Category: patternCategory[p], Confidence: Medium, Reason: s.Describe(p)}
	case dominant && g.Category != "" && g.Category != patternCategory[p]:
		g.Confidence = Low
		g.Reason += fmt.Sprintf("; but %s: review (%s?)", s.Describe(p), patternCategory[p])
	case !dominant && s.Sampled >= minSample && len(expected[g.Category]) > 0:
		matched := 0
		for _, p := range expected[g.Category] {
			matched += s.Matches[p]
		}
		if matched*2 < s.Sampled {
			g.Confidence = Low
			g.Reason += fmt.Sprintf("; but only %d of %d sampled values have that shape", matched, s.Sampled)
		}
	}
	return g
}
