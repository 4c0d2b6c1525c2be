package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// The record of processing (GDPR Art. 30(1)) of one namespace, built from
// its DataStores, RetentionPolicies and Erasure requests, and from the
// annotations of api/v1alpha1/ropa_annotations.go. docs/ropa.md describes it.
//
// It never contains personal data: identity values, Secret contents and
// request subjects are never read into it. The only Secret value read is the
// base URL of an http DataStore's connection, of which only the host is kept.
// Request names are not printed either (a name may carry a person's name):
// requests are only counted.

type ropaRecord struct {
	Namespace string `json:"namespace"`
	// NamespaceNote says why the Namespace's annotations could not be read.
	NamespaceNote     string       `json:"namespaceNote,omitempty"`
	ControllerContact ropaDeclared `json:"controllerContact"`
	DPOContact        ropaDeclared `json:"dpoContact"`
	Transfers         ropaDeclared `json:"transfers"`
	SecurityMeasures  ropaDeclared `json:"securityMeasures"`
	ErasureDeadline   ropaDeadline `json:"erasureDeadline"`
	Recipients        []ropaRecip  `json:"recipients"`
	Stores            []ropaStore  `json:"stores"`
	Notes             []string     `json:"notes,omitempty"`
}

// ropaDeclared is a declaration from an annotation: absent (Declared false)
// means no annotation says it.
type ropaDeclared struct {
	Declared bool     `json:"declared"`
	Values   []string `json:"values,omitempty"`
	// Source is the object and annotation the values come from.
	Source string `json:"source,omitempty"`
	// level is where it was declared: "namespace", "store" or "collection".
	level string
}

type ropaDeadline struct {
	// Default is the deadline of an Erasure request that sets none.
	Default string `json:"default"`
	// Source says where Default comes from.
	Source string `json:"source"`
	// Requests counts the namespace's Erasure requests (not dry runs) by the
	// deadline they set in spec.deadline.
	Requests []ropaDeadlineCount `json:"requests"`
	// RequestsWithDefault is how many Erasure requests set none.
	RequestsWithDefault int `json:"requestsWithDefault"`
}

type ropaDeadlineCount struct {
	Deadline string `json:"deadline"`
	Requests int    `json:"requests"`
}

type ropaRecip struct {
	Store string `json:"store"`
	// Host is the processor's endpoint host, from the connection URL.
	Host string `json:"host,omitempty"`
	// HostNote says why the host is not known.
	HostNote   string       `json:"hostNote,omitempty"`
	Name       ropaDeclared `json:"name"`
	Categories []string     `json:"categories"`
}

type ropaStore struct {
	Name              string           `json:"name"`
	Engine            string           `json:"engine"`
	Processor         *ropaRecip       `json:"processor,omitempty"`
	ControllerContact ropaDeclared     `json:"controllerContact"`
	DPOContact        ropaDeclared     `json:"dpoContact"`
	Transfers         ropaDeclared     `json:"transfers"`
	SecurityMeasures  ropaDeclared     `json:"securityMeasures"`
	Collections       []ropaCollection `json:"collections"`
}

type ropaCollection struct {
	Name string `json:"name"`
	// Location is the table, key pattern or processor paths.
	Location      string          `json:"location,omitempty"`
	IdentityTypes []string        `json:"identityTypes,omitempty"`
	Categories    []ropaCategory  `json:"categories"`
	References    []ropaReference `json:"references,omitempty"`
	Purposes      ropaDeclared    `json:"purposes"`
	DataSubjects  ropaDeclared    `json:"dataSubjects"`
	LegalBasis    ropaDeclared    `json:"legalBasis"`
	Erasure       ropaErasure     `json:"erasure"`
	Retention     []ropaRule      `json:"retention"`
	// RetentionLegalBases are the legal bases of the rules that keep data.
	RetentionLegalBases []ropaLegalBasis `json:"retentionLegalBases,omitempty"`
}

type ropaCategory struct {
	Category string   `json:"category"`
	Fields   []string `json:"fields"`
}

type ropaReference struct {
	Field           string `json:"field"`
	Collection      string `json:"collection"`
	CollectionField string `json:"collectionField,omitempty"`
	OnParentErasure string `json:"onParentErasure"`
}

type ropaErasure struct {
	// Action is onErasure: delete, anonymize or retain.
	Action string `json:"action"`
	// Deadline is the time limit of an erasure request here (the request's
	// deadline), empty when the rows are retained.
	Deadline     string `json:"deadline,omitempty"`
	RetainReason string `json:"retainReason,omitempty"`
	// ExemptedBy are the retention rules (exemptFromErasure) whose rows an
	// erasure keeps until their period ends.
	ExemptedBy []string `json:"exemptedBy,omitempty"`
	// KeptWithParents are the exemptFromErasure rules of collections above
	// this one (by cascade references): rows below a kept row are kept too.
	KeptWithParents []string `json:"keptWithParents,omitempty"`
	// Propagated is false for an http collection with no erasure template.
	Propagated *bool `json:"propagated,omitempty"`
	// CustomerContentOnly: customer.content fields are erased only by
	// requests whose scope names that category.
	CustomerContent bool `json:"customerContent,omitempty"`
}

type ropaRule struct {
	Policy            string   `json:"policy"`
	Rule              string   `json:"rule"`
	Period            string   `json:"period"`
	After             string   `json:"after"`
	Where             []string `json:"where,omitempty"`
	Action            string   `json:"action"`
	ExemptFromErasure bool     `json:"exemptFromErasure"`
	LegalBasis        string   `json:"legalBasis,omitempty"`
	Schedule          string   `json:"schedule"`
	Suspended         bool     `json:"suspended,omitempty"`
	DryRun            bool     `json:"dryRun,omitempty"`
}

type ropaLegalBasis struct {
	LegalBasis string `json:"legalBasis"`
	// Source is the rule, as policy/rule, with "(exemptFromErasure)" when
	// the basis also keeps rows from erasure.
	Source string `json:"source"`
}

type nsAnnotation struct {
	name        string
	annotations map[string]string
}

type ropaOptions struct {
	g               *globalOptions
	output          string
	erasureDeadline string
}

func newRopaCommand(g *globalOptions) *cobra.Command {
	o := &ropaOptions{g: g}
	cmd := &cobra.Command{
		Use:   "ropa",
		Short: "Print the namespace's GDPR Art. 30(1) record of processing, with a diagram of its data map",
		Long: `Print the record of processing activities (GDPR Art. 30(1)) of the
namespace, built from its DataStores, RetentionPolicies and Erasure requests:
per store and collection the categories of personal data, the recipients
(http processors, by endpoint host), the time limits for erasure and the legal
bases; purposes, categories of data subjects and the controller's contact come
from privacy.lethe.dev/* annotations (docs/ropa.md) and are "not declared"
without them. Markdown includes a Mermaid diagram of the data map.

No personal data is read: the only Secret value used is an http store's base
URL, of which only the host is printed.`,
		Example: `  kubectl lethe ropa -n shop > ropa.md
  kubectl lethe ropa -n shop -o json
  kubectl lethe ropa -n shop --erasure-deadline 72h   # the manager runs with --erasure-deadline=72h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.output != "markdown" && o.output != "json" {
				return fmt.Errorf("--output must be markdown or json, not %q", o.output)
			}
			if o.erasureDeadline != "" {
				if _, err := time.ParseDuration(o.erasureDeadline); err != nil {
					return fmt.Errorf("--erasure-deadline must be a duration such as 24h or 72h")
				}
			}
			c, ns, err := g.connect()
			if err != nil {
				return err
			}
			rec, err := buildRopa(cmd.Context(), c, ns, o.erasureDeadline)
			if err != nil {
				return err
			}
			if len(rec.Stores) == 0 {
				fmt.Fprintf(g.streams.Err, "warning: no DataStore in namespace %s: the record lists no processing\n", ns)
			}
			return renderRopa(g.streams.Out, rec, o.output)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "markdown", "the format: markdown or json")
	cmd.Flags().StringVar(&o.erasureDeadline, "erasure-deadline", "",
		"the manager's --erasure-deadline, when it is not the default 24h (kubectl lethe cannot read the manager's flags)")
	return cmd
}

func renderRopa(w io.Writer, rec *ropaRecord, format string) error {
	if format == "json" {
		b, err := json.MarshalIndent(rec, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := io.WriteString(w, ropaMarkdown(rec))
	return err
}

// defaultErasureDeadline is the manager's --erasure-deadline default (main.go).
const defaultErasureDeadline = "24h"

// buildRopa reads the namespace's objects and builds its record.
// erasureDeadline is the manager's --erasure-deadline as the user gave it,
// or empty for the manager's default.
func buildRopa(ctx context.Context, c client.Client, ns, erasureDeadline string) (*ropaRecord, error) {
	rec := &ropaRecord{Namespace: ns, Recipients: []ropaRecip{}, Stores: []ropaStore{}}

	nsa := &nsAnnotation{name: ns}
	nsObj := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: ns}, nsObj); err != nil {
		rec.NamespaceNote = fmt.Sprintf("the Namespace could not be read (%s): its annotations are taken as not declared", apiReason(err))
	} else {
		nsa.annotations = nsObj.Annotations
	}
	rec.ControllerContact = nsDeclared(nsa, privacyv1.AnnotationControllerContact)
	rec.DPOContact = nsDeclared(nsa, privacyv1.AnnotationDPOContact)
	rec.Transfers = nsDeclared(nsa, privacyv1.AnnotationTransfers)
	rec.SecurityMeasures = nsDeclared(nsa, privacyv1.AnnotationSecurityMeasures)

	stores := &privacyv1.DataStoreList{}
	if err := c.List(ctx, stores, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing DataStores: %w", err)
	}
	policies := &privacyv1.RetentionPolicyList{}
	if err := c.List(ctx, policies, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing RetentionPolicies: %w", err)
	}
	requests := &privacyv1.DataSubjectRequestList{}
	if err := c.List(ctx, requests, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("listing DataSubjectRequests: %w", err)
	}

	rec.ErasureDeadline = erasureDeadlines(requests.Items, erasureDeadline)
	deadline := rec.ErasureDeadline.Default

	// Rules by store and collection, policies and rules by name.
	sort.Slice(policies.Items, func(i, j int) bool { return policies.Items[i].Name < policies.Items[j].Name })
	rules := map[string]map[string][]ropaRule{}
	storeNames := map[string]map[string]bool{}
	for i := range stores.Items {
		s := &stores.Items[i]
		storeNames[s.Name] = map[string]bool{}
		for _, col := range s.Spec.Collections {
			storeNames[s.Name][string(col.Name)] = true
		}
	}
	for i := range policies.Items {
		p := &policies.Items[i]
		store := string(p.Spec.StoreRef)
		if storeNames[store] == nil {
			rec.Notes = append(rec.Notes, fmt.Sprintf("RetentionPolicy %s names DataStore %s, which is not in the namespace: its rules are not in the record", p.Name, store))
			continue
		}
		for _, r := range p.Spec.Rules {
			col := string(r.Collection)
			if !storeNames[store][col] {
				rec.Notes = append(rec.Notes, fmt.Sprintf("rule %s/%s names collection %s, which DataStore %s does not map", p.Name, r.Name, col, store))
				continue
			}
			rr := ropaRule{
				Policy: p.Name, Rule: r.Name, Period: string(r.After.Period), After: string(r.After.Field),
				Action: string(r.Action), ExemptFromErasure: r.ExemptFromErasure, LegalBasis: strings.TrimSpace(r.LegalBasis),
				Schedule: p.Spec.Schedule, Suspended: p.Spec.Suspend, DryRun: p.Spec.DryRun,
			}
			if rr.Action == "" {
				rr.Action = string(privacyv1.RetentionDelete)
			}
			for _, w := range r.Where {
				if w.IsNull != nil && *w.IsNull {
					rr.Where = append(rr.Where, string(w.Field)+" is null")
				} else {
					rr.Where = append(rr.Where, string(w.Field)+" is not null")
				}
			}
			if rules[store] == nil {
				rules[store] = map[string][]ropaRule{}
			}
			rules[store][col] = append(rules[store][col], rr)
		}
	}

	sort.Slice(stores.Items, func(i, j int) bool { return stores.Items[i].Name < stores.Items[j].Name })
	for i := range stores.Items {
		s := &stores.Items[i]
		st := ropaStore{
			Name: s.Name, Engine: string(s.Spec.Engine),
			ControllerContact: storeDeclared(s, nsa, privacyv1.AnnotationControllerContact),
			DPOContact:        storeDeclared(s, nsa, privacyv1.AnnotationDPOContact),
			Transfers:         storeDeclared(s, nsa, privacyv1.AnnotationTransfers),
			SecurityMeasures:  storeDeclared(s, nsa, privacyv1.AnnotationSecurityMeasures),
			Collections:       []ropaCollection{},
		}
		cols := append([]privacyv1.Collection(nil), s.Spec.Collections...)
		sort.Slice(cols, func(i, j int) bool { return cols[i].Name < cols[j].Name })
		storeCategories := map[string]bool{}
		for _, col := range cols {
			rc := collectionRecord(s, nsa, col, rules[s.Name][string(col.Name)], deadline)
			for _, cat := range rc.Categories {
				storeCategories[cat.Category] = true
			}
			st.Collections = append(st.Collections, rc)
		}
		keptWithParents(st.Collections)
		if s.Spec.Engine == privacyv1.EngineHTTP {
			r := ropaRecip{Store: s.Name, Name: storeOnly(s, privacyv1.AnnotationRecipient), Categories: sortedKeys(storeCategories)}
			r.Host, r.HostNote = processorHost(ctx, c, s)
			st.Processor = &r
			rec.Recipients = append(rec.Recipients, r)
		}
		rec.Stores = append(rec.Stores, st)
	}
	sort.Strings(rec.Notes)
	return rec, nil
}

func collectionRecord(s *privacyv1.DataStore, nsa *nsAnnotation, col privacyv1.Collection, rules []ropaRule, deadline string) ropaCollection {
	rc := ropaCollection{
		Name:         string(col.Name),
		Categories:   []ropaCategory{},
		Retention:    []ropaRule{},
		Purposes:     collectionDeclared(s, nsa, string(col.Name), privacyv1.AnnotationPurpose),
		DataSubjects: collectionDeclared(s, nsa, string(col.Name), privacyv1.AnnotationDataSubjects),
		LegalBasis:   collectionDeclared(s, nsa, string(col.Name), privacyv1.AnnotationLegalBasis),
	}
	switch {
	case col.Table != "":
		rc.Location = "table " + col.Table
	case col.KeyPattern != "":
		rc.Location = "keys " + col.KeyPattern
	case col.HTTP != nil:
		var parts []string
		for _, t := range []struct {
			kind string
			tpl  *privacyv1.HTTPRequestTemplate
		}{{"access", col.HTTP.Access}, {"erasure", col.HTTP.Erasure}, {"rectification", col.HTTP.Rectification}} {
			if t.tpl != nil {
				parts = append(parts, fmt.Sprintf("%s: %s %s", t.kind, t.tpl.Method, pathOnly(t.tpl.Path)))
			}
		}
		rc.Location = strings.Join(parts, "; ")
	case s.Spec.Engine == privacyv1.EnginePostgres || s.Spec.Engine == privacyv1.EngineMySQL:
		rc.Location = "table " + string(col.Name)
	}
	for t := range col.Identity {
		rc.IdentityTypes = append(rc.IdentityTypes, t)
	}
	sort.Strings(rc.IdentityTypes)

	byCat := map[string][]string{}
	for _, f := range col.Fields {
		byCat[string(f.Category)] = append(byCat[string(f.Category)], string(f.Name))
	}
	for _, cat := range sortedKeys(byCat) {
		fields := byCat[cat]
		sort.Strings(fields)
		rc.Categories = append(rc.Categories, ropaCategory{Category: cat, Fields: fields})
	}
	for _, r := range col.References {
		ope := string(r.OnParentErasure)
		if ope == "" {
			ope = string(privacyv1.ParentCascade)
		}
		rc.References = append(rc.References, ropaReference{Field: string(r.Field), Collection: string(r.Collection),
			CollectionField: string(r.CollectionField), OnParentErasure: ope})
	}
	sort.Slice(rc.References, func(i, j int) bool {
		a, b := rc.References[i], rc.References[j]
		if a.Collection != b.Collection {
			return a.Collection < b.Collection
		}
		return a.Field < b.Field
	})

	e := ropaErasure{Action: string(col.OnErasure), RetainReason: strings.TrimSpace(col.RetainReason)}
	if e.Action == "" {
		e.Action = string(privacyv1.ErasureDelete)
	}
	if e.Action != string(privacyv1.ErasureRetain) {
		e.Deadline = deadline
	}
	if col.HTTP != nil {
		p := col.HTTP.Erasure != nil
		e.Propagated = &p
		if !p {
			e.Deadline = ""
		}
	}
	for _, f := range col.Fields {
		if f.Category == privacyv1.CategoryCustomerContent || strings.HasPrefix(string(f.Category), string(privacyv1.CategoryCustomerContent)+".") {
			e.CustomerContent = true
		}
	}
	sort.Slice(rules, func(i, j int) bool {
		if rules[i].Policy != rules[j].Policy {
			return rules[i].Policy < rules[j].Policy
		}
		return rules[i].Rule < rules[j].Rule
	})
	for _, r := range rules {
		rc.Retention = append(rc.Retention, r)
		if r.ExemptFromErasure {
			e.ExemptedBy = append(e.ExemptedBy, r.Policy+"/"+r.Rule)
		}
		if r.LegalBasis != "" {
			src := "retention rule " + r.Policy + "/" + r.Rule
			if r.ExemptFromErasure {
				src += " (exemptFromErasure)"
			}
			rc.RetentionLegalBases = append(rc.RetentionLegalBases, ropaLegalBasis{LegalBasis: r.LegalBasis, Source: src})
		}
	}
	rc.Erasure = e
	return rc
}

// keptWithParents fills each collection's KeptWithParents: the
// exemptFromErasure rules of the collections it refers to by cascade
// references, directly or not.
func keptWithParents(cols []ropaCollection) {
	byName := map[string]*ropaCollection{}
	for i := range cols {
		byName[cols[i].Name] = &cols[i]
	}
	var above func(c *ropaCollection, seen map[string]bool) map[string]bool
	above = func(c *ropaCollection, seen map[string]bool) map[string]bool {
		out := map[string]bool{}
		for _, r := range c.References {
			p := byName[r.Collection]
			if p == nil || r.OnParentErasure != string(privacyv1.ParentCascade) || seen[p.Name] {
				continue
			}
			seen[p.Name] = true
			for _, rule := range p.Erasure.ExemptedBy {
				out[rule] = true
			}
			for rule := range above(p, seen) {
				out[rule] = true
			}
		}
		return out
	}
	for i := range cols {
		c := &cols[i]
		rules := above(c, map[string]bool{c.Name: true})
		for _, own := range c.Erasure.ExemptedBy {
			delete(rules, own)
		}
		c.Erasure.KeptWithParents = sortedKeys(rules)
		if len(c.Erasure.KeptWithParents) == 0 {
			c.Erasure.KeptWithParents = nil
		}
	}
}

// erasureDeadlines: the default deadline of Erasure requests, where it comes
// from, and the namespace's Erasure requests counted by their own deadline.
func erasureDeadlines(items []privacyv1.DataSubjectRequest, given string) ropaDeadline {
	d := ropaDeadline{
		Default: defaultErasureDeadline,
		Source: "the default of the manager's --erasure-deadline flag (24h); kubectl lethe cannot read the manager's flags: " +
			"if the manager runs with another value, pass it with kubectl lethe ropa --erasure-deadline",
		Requests: []ropaDeadlineCount{},
	}
	if given != "" {
		d.Default = given
		d.Source = "the manager's --erasure-deadline as given to kubectl lethe ropa --erasure-deadline (not read from the cluster)"
	}
	counts := map[string]int{}
	for i := range items {
		r := &items[i]
		if r.Spec.Type != privacyv1.RequestErasure || r.Spec.DryRun {
			continue
		}
		if r.Spec.Deadline == "" {
			d.RequestsWithDefault++
			continue
		}
		counts[string(r.Spec.Deadline)]++
	}
	for _, k := range sortedKeys(counts) {
		d.Requests = append(d.Requests, ropaDeadlineCount{Deadline: k, Requests: counts[k]})
	}
	return d
}

// processorHost is the host of an http store's base URL, read from its
// connection Secret; or, when it cannot be known, why. Nothing else of the
// Secret is kept, and no error carrying its value is ever returned.
func processorHost(ctx context.Context, c client.Client, s *privacyv1.DataStore) (host, note string) {
	ref := s.Spec.Connection.SecretRef
	sec := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: ref.Name}, sec); err != nil {
		return "", fmt.Sprintf("not known: connection Secret %s could not be read (%s)", ref.Name, apiReason(err))
	}
	raw, ok := sec.Data[ref.Key]
	if !ok {
		return "", fmt.Sprintf("not known: connection Secret %s has no key %s", ref.Name, ref.Key)
	}
	u, err := url.Parse(strings.TrimSpace(string(raw)))
	if err != nil || u.Host == "" || !hostPattern.MatchString(u.Host) {
		// err would quote the value: never use it.
		return "", fmt.Sprintf("not known: key %s of connection Secret %s is not a URL with a host", ref.Key, ref.Name)
	}
	return strings.ToLower(u.Host), ""
}

// hostPattern is a host name or IP address, with an optional port.
var hostPattern = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]{0,252}))(:[0-9]{1,5})?$`)

// pathOnly drops a template's query string, which may name more than the
// resource (placeholders are kept: they are identity types, not values).
func pathOnly(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}

// apiReason is the kind of an API error, without its message.
func apiReason(err error) string {
	switch {
	case apierrors.IsNotFound(err):
		return "not found"
	case apierrors.IsForbidden(err):
		return "forbidden"
	case apierrors.IsUnauthorized(err):
		return "unauthorized"
	}
	if r := apierrors.ReasonForError(err); r != "" {
		return string(r)
	}
	return "error"
}

// declaredValues splits an annotation into its items: lines and
// ';'-separated parts, trimmed, empty ones dropped.
func declaredValues(v string) []string {
	var out []string
	for _, line := range strings.Split(v, "\n") {
		for _, part := range strings.Split(line, ";") {
			if p := strings.TrimSpace(part); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func declaredFrom(annotations map[string]string, key, source, level string) (ropaDeclared, bool) {
	v, ok := annotations[key]
	if !ok {
		return ropaDeclared{}, false
	}
	vals := declaredValues(v)
	if len(vals) == 0 {
		return ropaDeclared{}, false
	}
	return ropaDeclared{Declared: true, Values: vals, Source: source + ", annotation " + key, level: level}, true
}

func nsDeclared(nsa *nsAnnotation, key string) ropaDeclared {
	d, _ := declaredFrom(nsa.annotations, key, "Namespace "+nsa.name, "namespace")
	return d
}

func storeOnly(s *privacyv1.DataStore, key string) ropaDeclared {
	d, _ := declaredFrom(s.Annotations, key, "DataStore "+s.Name, "store")
	return d
}

func storeDeclared(s *privacyv1.DataStore, nsa *nsAnnotation, key string) ropaDeclared {
	if d, ok := declaredFrom(s.Annotations, key, "DataStore "+s.Name, "store"); ok {
		return d
	}
	return nsDeclared(nsa, key)
}

func collectionDeclared(s *privacyv1.DataStore, nsa *nsAnnotation, col, key string) ropaDeclared {
	if d, ok := declaredFrom(s.Annotations, key+"."+col, "DataStore "+s.Name, "collection"); ok {
		return d
	}
	return storeDeclared(s, nsa, key)
}
