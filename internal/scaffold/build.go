package scaffold

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/masking"
)

// Options of a draft.
type Options struct {
	// Name of the DataStore; default the database's name.
	Name string
	// Namespace of the DataStore; "" leaves it out.
	Namespace string
	// SecretName is the Secret holding the DSN (key dsn) and the masking key
	// (key maskingKey); default Name.
	SecretName string
	// Sampled is how many values per text column were sampled (0: none).
	Sampled int
}

// Draft is a DataStore drafted from a schema, with the reasons for each of
// its suggestions.
type Draft struct {
	Store *privacyv1.DataStore
	// Guesses of every column of every table, by "schema.table.column".
	Guesses map[string]Guess
	// Review lists what the draft could not decide, for a person to.
	Review []string
	header []string
	notes  map[string][]string
}

// Limits of the API (api/v1alpha1).
const (
	maxCollections = 64
	maxFields      = 128
	maxReferences  = 16
)

var identifierRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]{0,62}$`)
var dnsNameRe = regexp.MustCompile(`[^a-z0-9-]+`)

// collection is a table being drafted.
type collection struct {
	t        *Table
	name     string
	pk       string
	pkWhy    string
	identity map[string]string
	idWhy    map[string]string
	refs     []*ref
	excluded bool
}

type ref struct {
	child, parent *collection
	fk            ForeignKey
	field         string
	parentField   string // "" when the parent's primary key
	setNull       bool
	why           string
	conf          Confidence
}

// ColumnKey is how Guesses and sample stats are keyed.
func ColumnKey(t *Table, column string) string { return t.Schema + "." + t.Name + "." + column }

// Build drafts a DataStore from s. stats are the sample counts by ColumnKey
// (nil: nothing was sampled).
func Build(s *Schema, stats map[string]*Stats, o Options) *Draft {
	d := &Draft{Guesses: map[string]Guess{}, notes: map[string][]string{}}
	if o.Name == "" {
		o.Name = strings.Trim(dnsNameRe.ReplaceAllString(strings.ToLower(s.Database), "-"), "-")
		if o.Name == "" {
			o.Name = "scaffolded-db"
		}
	}
	if o.SecretName == "" {
		o.SecretName = o.Name
	}

	// Tables Lethe can map.
	var cols []*collection
	byTable := map[*Table]*collection{}
	nameCount := map[string]int{}
	for _, t := range s.Tables {
		nameCount[t.Name]++
	}
	for _, t := range s.Tables {
		if t.Name == "lethe_journal" {
			continue
		}
		label := t.Schema + "." + t.Name
		c := &collection{t: t, identity: map[string]string{}, idWhy: map[string]string{}}
		switch {
		case t.Unmappable != "":
			d.Review = append(d.Review, fmt.Sprintf("table %s is not mapped: %s", label, t.Unmappable))
			continue
		case !identifierRe.MatchString(t.Name) || !identifierRe.MatchString(t.Schema):
			d.Review = append(d.Review, fmt.Sprintf("table %s is not mapped: its name is not an identifier Lethe accepts (letters, digits, _ and $); rename it or map it by hand", label))
			continue
		}
		c.name = t.Name
		if nameCount[t.Name] > 1 || (s.Engine == privacyv1.EngineMySQL && t.Schema != s.DefaultSchema && nameCount[t.Name] > 1) {
			c.name = t.Schema + "_" + t.Name
		}
		if !identifierRe.MatchString(c.name) {
			d.Review = append(d.Review, fmt.Sprintf("table %s is not mapped: no collection name of at most 63 characters fits it", label))
			continue
		}
		switch {
		case len(t.PrimaryKey) == 1:
			c.pk, c.pkWhy = t.PrimaryKey[0], "the primary key"
		default:
			for _, col := range t.Columns {
				if col.UniqueAlone && !col.Nullable {
					c.pk, c.pkWhy = col.Name, "a NOT NULL UNIQUE column ("+map[bool]string{true: "the primary key has several columns", false: "the table has no primary key"}[len(t.PrimaryKey) > 1]+")"
					break
				}
			}
		}
		if c.pk == "" {
			d.Review = append(d.Review, fmt.Sprintf("table %s is not mapped: Lethe acts by a one-column key and it has neither a one-column primary key nor a NOT NULL UNIQUE column", label))
			continue
		}
		if !identifierRe.MatchString(c.pk) {
			d.Review = append(d.Review, fmt.Sprintf("table %s is not mapped: its key column is not an identifier Lethe accepts", label))
			continue
		}
		cols = append(cols, c)
		byTable[t] = c
	}

	// Classify every column.
	keyCols := func(t *Table) map[string]bool {
		k := map[string]bool{}
		for _, p := range t.PrimaryKey {
			k[p] = true
		}
		for _, fk := range t.ForeignKeys {
			for _, c := range fk.Columns {
				k[c] = true
			}
		}
		return k
	}
	for _, t := range s.Tables {
		keys := keyCols(t)
		for _, col := range t.Columns {
			d.Guesses[ColumnKey(t, col.Name)] = Classify(t, col, keys[col.Name], stats[ColumnKey(t, col.Name)])
		}
	}
	guess := func(c *collection, column string) Guess { return d.Guesses[ColumnKey(c.t, column)] }

	// Identities: unique e-mail columns, and the root table's key as userId.
	incoming := map[*collection]int{}
	for _, c := range cols {
		seen := map[*collection]bool{}
		for _, fk := range c.t.ForeignKeys {
			if p := byTable[s.Find(fk.RefSchema, fk.RefTable)]; p != nil && p != c && !seen[p] {
				seen[p] = true
				incoming[p]++
			}
		}
	}
	emailCol := func(c *collection, unique bool) string {
		for _, col := range c.t.Columns {
			g := guess(c, col.Name)
			if g.Category == "user.contact.email" && g.Confidence != Low && (!unique || col.UniqueAlone) && identifierRe.MatchString(col.Name) {
				return col.Name
			}
		}
		return ""
	}
	var root *collection
	rootScore := -1
	for _, c := range cols {
		score := incoming[c] * 2
		if n := (name{table: Tokens(c.t.Name)}); n.tableHas("user", "account", "customer", "member", "person", "people", "client", "profile") {
			score += 3
		}
		if e := emailCol(c, true); e != "" {
			c.identity["email"] = e
			c.idWhy["email"] = fmt.Sprintf("%s is a UNIQUE e-mail column: a subject is found by it (%s)", e, guess(c, e).Confidence)
			score += 4
		}
		if score > rootScore && (len(c.identity) > 0 || score >= 3) {
			root, rootScore = c, score
		}
	}
	if root != nil {
		conf := Medium
		if len(root.identity) > 0 && incoming[root] > 0 {
			conf = High
		}
		root.identity["userId"] = root.pk
		root.idWhy["userId"] = fmt.Sprintf("%s is the root table's key: %d table(s) refer to it%s (%s)", root.pk, incoming[root],
			map[bool]string{true: " and it holds the subject's e-mail", false: ""}[root.identity["email"] != ""], conf)
	}

	// References from foreign keys.
	for _, c := range cols {
		for _, fk := range c.t.ForeignKeys {
			pt := s.Find(fk.RefSchema, fk.RefTable)
			p := byTable[pt]
			desc := fmt.Sprintf("foreign key %s (%s) → %s.%s(%s), ON DELETE %s", fk.Name, strings.Join(fk.Columns, ", "), fk.RefSchema, fk.RefTable, strings.Join(fk.RefColumns, ", "), fk.OnDelete)
			switch {
			case p == nil:
				if pt == nil {
					d.Review = append(d.Review, fmt.Sprintf("%s.%s: %s refers to a table outside the scaffolded schemas; add its schema with --schema if it holds personal data", c.t.Schema, c.t.Name, desc))
				}
				continue
			case len(fk.Columns) != 1:
				d.Review = append(d.Review, fmt.Sprintf("%s.%s: %s has several columns; Lethe references are one column: map it by hand", c.t.Schema, c.t.Name, desc))
				continue
			}
			col, _ := c.t.Column(fk.Columns[0])
			r := &ref{child: c, parent: p, fk: fk, field: col.Name}
			if fk.RefColumns[0] != p.pk {
				r.parentField = fk.RefColumns[0]
			}
			if !identifierRe.MatchString(r.field) || !identifierRe.MatchString(fk.RefColumns[0]) {
				d.Review = append(d.Review, fmt.Sprintf("%s.%s: %s uses a column name Lethe does not accept", c.t.Schema, c.t.Name, desc))
				continue
			}
			otherOwner := ""
			for _, o := range c.t.ForeignKeys {
				if o.Name != fk.Name && len(o.Columns) == 1 && byTable[s.Find(o.RefSchema, o.RefTable)] != nil {
					if oc, _ := c.t.Column(o.Columns[0]); !oc.Nullable {
						otherOwner = o.Columns[0]
					}
				}
			}
			switch {
			case p == c && col.Nullable:
				r.setNull, r.conf, r.why = true, High, "a nullable self-reference: the referring rows are other subjects'; only the link is cleared"
			case p == c:
				d.Review = append(d.Review, fmt.Sprintf("%s.%s: %s is a NOT NULL self-reference: Lethe needs setNull for it, which NOT NULL forbids; allow NULL in %s and add the reference", c.t.Schema, c.t.Name, desc, col.Name))
				continue
			case (fk.OnDelete == "SET NULL" || fk.OnDelete == "SET DEFAULT") && col.Nullable:
				r.setNull, r.conf, r.why = true, High, "ON DELETE "+fk.OnDelete+": the database itself only clears the link when the parent goes"
			case !col.Nullable:
				r.conf, r.why = High, fmt.Sprintf("%s is NOT NULL: every row of %s belongs to a row of %s", col.Name, c.t.Name, p.t.Name)
			case fk.OnDelete == "CASCADE":
				r.conf, r.why = High, "nullable, but ON DELETE CASCADE: the database treats these rows as the parent's"
			case len(c.identity) > 0:
				r.setNull, r.conf, r.why = true, Medium, fmt.Sprintf("nullable, and %s rows are subjects of their own (identity %s): only the link is cleared", c.t.Name, strings.Join(sortedKeys(c.identity), ", "))
			case otherOwner != "":
				r.setNull, r.conf, r.why = true, Medium, fmt.Sprintf("nullable, and %s rows belong to whoever %s (NOT NULL) names: only this link is cleared", c.t.Name, otherOwner)
			default:
				r.conf, r.why = Medium, fmt.Sprintf("nullable, but the only link of a row of %s to a subject: its rows are the parent's", c.t.Name)
			}
			r.why = desc + "; " + r.why
			c.refs = append(c.refs, r)
		}
	}
	breakCycles(cols, d)

	// Tables no subject can be reached in: an e-mail column makes them
	// findable; others are left out.
	for changed := true; changed; {
		changed = false
		reach := reachability(cols)
		for _, c := range cols {
			if c.excluded || reach[c] {
				continue
			}
			if e := emailCol(c, false); e != "" {
				c.identity["email"] = e
				c.idWhy["email"] = fmt.Sprintf("%s is an e-mail column, and nothing else leads from a subject to this table (%s)", e, Low)
				changed = true
				continue
			}
			c.excluded = true
			changed = true
			d.Review = append(d.Review, fmt.Sprintf("table %s.%s is not mapped: no identity column and no reference leads to it from one; if it holds personal data, add an identity to it", c.t.Schema, c.t.Name))
		}
	}

	// The DataStore.
	ds := &privacyv1.DataStore{
		TypeMeta:   metav1.TypeMeta{APIVersion: privacyv1.GroupVersion.String(), Kind: "DataStore"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: o.Namespace},
		Spec: privacyv1.DataStoreSpec{
			Engine:     s.Engine,
			Connection: privacyv1.ConnectionSpec{SecretRef: privacyv1.SecretKeySelector{Name: o.SecretName, Key: "dsn"}},
		},
	}
	needsKey := false
	var unknown []string
	mapped := 0
	for _, c := range cols {
		if c.excluded {
			continue
		}
		if mapped == maxCollections {
			d.Review = append(d.Review, fmt.Sprintf("table %s.%s is not mapped: a DataStore holds at most %d collections; split the schema over several DataStores", c.t.Schema, c.t.Name, maxCollections))
			continue
		}
		mapped++
		pc := privacyv1.Collection{Name: privacyv1.Identifier(c.name), PrimaryKey: privacyv1.Identifier(c.pk), OnErasure: privacyv1.ErasureDelete}
		path := "c/" + c.name
		qualified := c.t.Name
		if c.t.Schema != s.DefaultSchema {
			pc.Table = c.t.Schema + "." + c.t.Name
			qualified = pc.Table
		}
		d.note(path, fmt.Sprintf("table %s.%s; primaryKey %s: %s.", c.t.Schema, c.t.Name, c.pk, c.pkWhy))
		d.note(path+"/onErasure", "onErasure delete (the default): review it. anonymize keeps the rows with their fields masked; retain keeps them, with a retainReason (and a RetentionPolicy rule to delete them later).")
		if hint := keptByLaw(c.t.Name); hint != "" {
			d.note(path+"/onErasure", hint)
		}
		_ = qualified
		if len(c.identity) > 0 {
			pc.Identity = map[string]privacyv1.Identifier{}
			for _, k := range sortedKeys(c.identity) {
				pc.Identity[k] = privacyv1.Identifier(c.identity[k])
				d.note(path+"/i/"+k, fmt.Sprintf("identity %s: %s", k, c.idWhy[k]))
			}
		}
		for _, r := range c.refs {
			if r.parent.excluded {
				continue
			}
			if len(pc.References) == maxReferences {
				d.Review = append(d.Review, fmt.Sprintf("%s.%s: more than %d references; %s was left out", c.t.Schema, c.t.Name, maxReferences, r.fk.Name))
				continue
			}
			pr := privacyv1.Reference{Field: privacyv1.Identifier(r.field), Collection: privacyv1.Identifier(r.parent.name), OnParentErasure: privacyv1.ParentCascade}
			if r.parentField != "" {
				pr.CollectionField = privacyv1.Identifier(r.parentField)
			}
			if r.setNull {
				pr.OnParentErasure = privacyv1.ParentSetNull
			}
			pc.References = append(pc.References, pr)
			d.note(path+"/r/"+r.field, fmt.Sprintf("onParentErasure %s (%s): %s", pr.OnParentErasure, r.conf, r.why))
		}
		keys := keyCols(c.t)
		for _, col := range c.t.Columns {
			g := guess(c, col.Name)
			if keys[col.Name] || col.Name == c.pk {
				continue
			}
			if g.Unknown {
				unknown = append(unknown, fmt.Sprintf("%s.%s (%s)", qualified, col.Name, col.Type))
				continue
			}
			if g.Category == "" {
				continue
			}
			if !identifierRe.MatchString(col.Name) {
				d.Review = append(d.Review, fmt.Sprintf("%s.%s: column %q looks personal (%s) but its name is not an identifier Lethe accepts", c.t.Schema, c.t.Name, col.Name, g.Category))
				continue
			}
			if len(pc.Fields) == maxFields {
				d.Review = append(d.Review, fmt.Sprintf("%s.%s: more than %d fields; %s was left out", c.t.Schema, c.t.Name, maxFields, col.Name))
				continue
			}
			f := privacyv1.Field{Name: privacyv1.Identifier(col.Name), Category: privacyv1.Category(g.Category)}
			m, why := SuggestMasking(g.Category, col)
			f.Masking = m
			if m != nil && masking.NeedsKey(m) {
				needsKey = true
			}
			pc.Fields = append(pc.Fields, f)
			strategy := "no masking"
			if m != nil {
				strategy = string(m.Strategy)
			}
			d.note(path+"/f/"+col.Name, fmt.Sprintf("%s (%s confidence): %s. %s: %s.", g.Category, g.Confidence, g.Reason, strategy, why))
		}
		ds.Spec.Collections = append(ds.Spec.Collections, pc)
	}
	if needsKey {
		ds.Spec.MaskingKeySecretRef = &privacyv1.SecretKeySelector{Name: o.SecretName, Key: "maskingKey"}
		d.note("maskingKey", "hash and uniqueEmail need a masking key: keep it secret and stable (openssl rand -hex 32).")
	}
	if len(unknown) > 0 {
		d.Review = append(d.Review, "columns no rule classified (not mapped; map those that hold personal data):")
		for _, u := range unknown {
			d.Review = append(d.Review, "  "+u)
		}
	}
	schemas := []string{}
	for _, t := range s.Tables {
		if !slices.Contains(schemas, t.Schema) {
			schemas = append(schemas, t.Schema)
		}
	}
	d.header = []string{
		fmt.Sprintf("DataStore drafted by kubectl lethe scaffold from the %s database %q (schemas: %s):", s.Engine, s.Database, strings.Join(schemas, ", ")),
		fmt.Sprintf("%d tables, %d collections, %d fields.", len(s.Tables), len(ds.Spec.Collections), countFields(ds)),
		"Every suggestion says why and how sure; review each one, and the list at the end, before applying it.",
	}
	if o.Sampled > 0 {
		d.header = append(d.header, fmt.Sprintf("Up to %d values per text column were sampled and matched against patterns; only counts of matches are reported, never a value.", o.Sampled))
	}
	d.header = append(d.header, fmt.Sprintf("The Secret %s holds the connection string (key dsn)%s:", o.SecretName, map[bool]string{true: " and the masking key (key maskingKey)", false: ""}[needsKey]),
		fmt.Sprintf("  kubectl create secret generic %s --from-file=dsn=DSN_FILE%s", o.SecretName, map[bool]string{true: " --from-literal=maskingKey=$(openssl rand -hex 32)", false: ""}[needsKey]))
	if len(ds.Spec.Collections) == 0 {
		d.Review = append(d.Review, "no table could be mapped: a DataStore needs at least one collection with an identity")
	}
	d.Store = ds
	return d
}

func countFields(ds *privacyv1.DataStore) int {
	n := 0
	for _, c := range ds.Spec.Collections {
		n += len(c.Fields)
	}
	return n
}

func keptByLaw(table string) string {
	n := name{table: Tokens(table)}
	if n.tableHas("invoice", "invoice_line", "payment", "transaction", "ledger", "receipt", "credit_note", "tax_return", "payout", "refund") {
		return "Records like these are often kept by law for years: consider onErasure retain with a retainReason, and a RetentionPolicy rule with exemptFromErasure."
	}
	return ""
}

func (d *Draft) note(path, text string) { d.notes[path] = append(d.notes[path], text) }

func sortedKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// reachability: a collection is reachable when it maps an identity or a
// cascade reference leads to a reachable one.
func reachability(cols []*collection) map[*collection]bool {
	reach := map[*collection]bool{}
	for changed := true; changed; {
		changed = false
		for _, c := range cols {
			if c.excluded || reach[c] {
				continue
			}
			ok := len(c.identity) > 0
			for _, r := range c.refs {
				ok = ok || (!r.setNull && !r.parent.excluded && reach[r.parent])
			}
			if ok {
				reach[c], changed = true, true
			}
		}
	}
	return reach
}

// breakCycles turns cascade references on a cycle into setNull (when the
// column is nullable) or drops them, until the cascade graph has no cycle.
func breakCycles(cols []*collection, d *Draft) {
	for {
		cycle := findCycle(cols)
		if cycle == nil {
			return
		}
		// Prefer a nullable reference, the least sure first.
		var pick *ref
		for _, r := range cycle {
			col, _ := r.child.t.Column(r.field)
			if col.Nullable && (pick == nil || r.conf == Medium) {
				pick = r
			}
		}
		if pick != nil {
			pick.setNull, pick.conf = true, Low
			pick.why += "; setNull because the cascade references form a cycle, which Lethe refuses: review which side owns the other"
			continue
		}
		r := cycle[0]
		r.child.refs = slices.DeleteFunc(r.child.refs, func(x *ref) bool { return x == r })
		d.Review = append(d.Review, fmt.Sprintf("%s.%s: foreign key %s left out: NOT NULL references form a cycle, which Lethe refuses; map one side by hand", r.child.t.Schema, r.child.t.Name, r.fk.Name))
	}
}

func findCycle(cols []*collection) []*ref {
	state := map[*collection]int{}
	var stack []*ref
	var found []*ref
	var visit func(c *collection) bool
	visit = func(c *collection) bool {
		state[c] = 1
		for _, r := range c.refs {
			if r.setNull || r.parent == c {
				continue
			}
			stack = append(stack, r)
			switch state[r.parent] {
			case 1:
				for i, s := range stack {
					if s.child == r.parent {
						found = slices.Clone(stack[i:])
						return true
					}
				}
			case 0:
				if visit(r.parent) {
					return true
				}
			}
			stack = stack[:len(stack)-1]
		}
		state[c] = 2
		return false
	}
	for _, c := range cols {
		if state[c] == 0 && visit(c) {
			return found
		}
	}
	return nil
}
