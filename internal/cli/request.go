package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

const (
	// managedByLabel marks the Secrets kubectl-lethe creates.
	managedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "kubectl-lethe"
)

// requestOptions are the flags of erase, access and rectify.
type requestOptions struct {
	g            *globalOptions
	typ          privacyv1.RequestType
	name         string
	identities   []string
	identityFile string
	values       []string
	valuesFile   string
	stores       []string
	categories   []string
	selector     string
	dryRun       bool
	deadline     string
	exportTTL    string
	recipients   []string
	wait         bool
	timeout      time.Duration
	output       string
}

var verbs = map[privacyv1.RequestType]string{
	privacyv1.RequestErasure: "erase", privacyv1.RequestAccess: "access", privacyv1.RequestRectification: "rectify",
}

func newRequestCommand(g *globalOptions, typ privacyv1.RequestType) *cobra.Command {
	o := &requestOptions{g: g, typ: typ}
	verb := verbs[typ]
	short := map[privacyv1.RequestType]string{
		privacyv1.RequestErasure:       "File an Erasure request: delete or anonymize the subject's data as each store maps it",
		privacyv1.RequestAccess:        "File an Access request: export the subject's data to a Secret owned by the request",
		privacyv1.RequestRectification: "File a Rectification request: set the subject's values of the given categories",
	}[typ]
	use := verb + " --identity TYPE=VALUE... | --identity-file FILE"
	example := `  # The identities from standard input, so they stay out of the shell history:
  printf 'email=jane@example.com\nuserId=42\n' | kubectl lethe ` + verb + ` -n shop --identity-file - --wait`
	if typ == privacyv1.RequestRectification {
		use += " --set CATEGORY=VALUE..."
		example = `  printf 'email=jane@example.com\n' | kubectl lethe rectify -n shop --identity-file - \
      --set-file corrected.txt --wait`
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

The subject's identities are written to a new Secret (labelled
privacy.lethe.dev/consume=true, owned by the request, immutable), never into
the request: Lethe deletes the Secret once the request is complete. The
request refers to it with spec.subject.identitiesFrom. Identity values are
never printed.`,
		Example: example,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				// The arguments are not echoed: they are likely identities.
				return fmt.Errorf("%s takes no arguments: give the identities with --identity TYPE=VALUE or --identity-file FILE", verb)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context()) },
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.identities, "identity", nil, "an identity of the subject, TYPE=VALUE (repeatable), e.g. email=jane@example.com; prefer --identity-file")
	f.StringVar(&o.identityFile, "identity-file", "", "read identities from FILE, one TYPE=VALUE per line (# comments and blank lines skipped); - reads standard input")
	f.StringVar(&o.name, "name", "", "the request's name (default: generated, "+strings.ToLower(string(typ))+"-XXXXX)")
	f.StringArrayVar(&o.stores, "store", nil, "narrow the scope to this DataStore (repeatable; default: every DataStore of the namespace)")
	f.StringArrayVar(&o.categories, "category", nil, "narrow the scope to this category and its sub-categories (repeatable; default: all but customer.content)")
	f.StringVarP(&o.selector, "selector", "l", "", "narrow the scope to DataStores with these labels (a label selector, e.g. tier=prod)")
	f.BoolVar(&o.dryRun, "dry-run", false, "file a dry-run request: Lethe plans only and the receipt shows what would happen; nothing is changed")
	f.StringVar(&o.deadline, "deadline", "", "the request's deadline, a period such as 24h or 30d (default: the operator's, 24h for Erasure, 30d otherwise)")
	f.BoolVar(&o.wait, "wait", false, "wait until the request is complete (or stalled), then print its receipt")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "with --wait, how long to wait")
	f.StringVarP(&o.output, "output", "o", "markdown", "with --wait, the receipt's format: markdown or json")
	switch typ {
	case privacyv1.RequestAccess:
		f.StringVar(&o.exportTTL, "export-ttl", "", "how long the export Secret is kept, a period such as 7d (default 30d)")
		f.StringArrayVar(&o.recipients, "recipient", nil, "encrypt the export to this age public key (age1...; repeatable)")
	case privacyv1.RequestRectification:
		f.StringArrayVar(&o.values, "set", nil, "a corrected value, CATEGORY=VALUE (repeatable), e.g. user.contact.email=jane@new.example; prefer --set-file")
		f.StringVar(&o.valuesFile, "set-file", "", "read corrected values from FILE, one CATEGORY=VALUE per line; - reads standard input")
	}
	return cmd
}

// inputs reads and checks the identities and values before anything is sent.
func (o *requestOptions) inputs() (ids, values *pairs, err error) {
	if o.output != "markdown" && o.output != "json" {
		return nil, nil, fmt.Errorf("--output must be markdown or json")
	}
	if o.identityFile == "-" && o.valuesFile == "-" {
		return nil, nil, errors.New("--identity-file and --set-file cannot both read standard input")
	}
	// Every value is recorded as sensitive before it is checked.
	seen := func(v string) { o.g.addSensitive(v) }
	ids = newPairs(identityPairs, seen)
	if err := ids.addFlags(o.identities); err != nil {
		return nil, nil, err
	}
	if o.identityFile != "" {
		if o.identityFile == "-" && isTerminal(o.g.streams.In) {
			fmt.Fprintln(o.g.streams.Err, "reading identities from standard input: one TYPE=VALUE per line, then Ctrl-D")
		}
		if err := ids.readFile(o.identityFile, o.g.streams.In); err != nil {
			return nil, nil, err
		}
	}
	if len(ids.keys) == 0 {
		return nil, nil, errors.New("no identity: give the subject's identities with --identity TYPE=VALUE or --identity-file FILE")
	}
	if o.typ != privacyv1.RequestRectification {
		return ids, nil, nil
	}
	values = newPairs(valuePairs, seen)
	if err := values.addFlags(o.values); err != nil {
		return nil, nil, err
	}
	if o.valuesFile != "" {
		if err := values.readFile(o.valuesFile, o.g.streams.In); err != nil {
			return nil, nil, err
		}
	}
	if len(values.keys) == 0 {
		return nil, nil, errors.New("rectify needs the corrected values: --set CATEGORY=VALUE or --set-file FILE")
	}
	return ids, values, nil
}

// request is the DataSubjectRequest to create, its Secrets named.
func (o *requestOptions) request(ns, subjectSecret, valuesSecret string) (*privacyv1.DataSubjectRequest, error) {
	dsr := &privacyv1.DataSubjectRequest{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: o.name},
		Spec: privacyv1.DataSubjectRequestSpec{
			Type:     o.typ,
			Subject:  privacyv1.Subject{IdentitiesFrom: &privacyv1.IdentitiesSource{SecretRef: privacyv1.SecretReference{Name: subjectSecret}}},
			DryRun:   o.dryRun,
			Deadline: privacyv1.Period(o.deadline),
		},
	}
	if o.name == "" {
		dsr.GenerateName = strings.ToLower(string(o.typ)) + "-"
	}
	for _, s := range o.stores {
		dsr.Spec.Scope.Stores = append(dsr.Spec.Scope.Stores, privacyv1.StoreName(s))
	}
	for _, c := range o.categories {
		dsr.Spec.Scope.Categories = append(dsr.Spec.Scope.Categories, privacyv1.Category(c))
	}
	if o.selector != "" {
		sel, err := metav1.ParseToLabelSelector(o.selector)
		if err != nil {
			return nil, fmt.Errorf("--selector: %w", err)
		}
		dsr.Spec.Scope.StoreSelector = sel
	}
	if o.exportTTL != "" || len(o.recipients) > 0 {
		dsr.Spec.Export = &privacyv1.ExportSpec{TTL: privacyv1.Period(o.exportTTL)}
		for _, r := range o.recipients {
			dsr.Spec.Export.Recipients = append(dsr.Spec.Export.Recipients, privacyv1.AgeRecipient(r))
		}
	}
	if valuesSecret != "" {
		dsr.Spec.Rectification = &privacyv1.Rectification{ValuesFrom: &privacyv1.SecretReference{Name: valuesSecret}}
	}
	return dsr, nil
}

// inputSecret is a new Secret handing personal data to the request: Lethe
// may delete it (consume label), it cannot be edited (immutable), and once
// the request exists it is owned by it.
func inputSecret(ns, prefix string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, GenerateName: prefix,
			Labels: map[string]string{privacyv1.ConsumeLabel: "true", managedByLabel: managedBy},
		},
		Type:      corev1.SecretTypeOpaque,
		Immutable: ptr.To(true),
		Data:      data,
	}
}

func (o *requestOptions) run(ctx context.Context) error {
	ids, values, err := o.inputs()
	if err != nil {
		return err
	}
	c, ns, err := o.g.connect()
	if err != nil {
		return err
	}
	// The API server checks the request first (a server-side dry run: the
	// schema, CEL rules and admission policies), so a refused request
	// leaves no Secret behind.
	probe, err := o.request(ns, "lethe-subject-check", valuesName(values, "lethe-values-check"))
	if err != nil {
		return err
	}
	if err := c.Create(ctx, probe, client.DryRunAll); err != nil {
		return fmt.Errorf("the API server refused the request: %w", err)
	}

	prefix := o.name
	if prefix == "" {
		prefix = strings.ToLower(string(o.typ))
	}
	var created []*corev1.Secret
	cleanup := func() {
		for _, s := range created {
			// Best effort, and exactly the Secret created here.
			_ = c.Delete(context.WithoutCancel(ctx), s, client.Preconditions{UID: &s.UID})
		}
	}
	subject := inputSecret(ns, prefix+"-subject-", ids.data())
	if err := c.Create(ctx, subject); err != nil {
		return fmt.Errorf("creating the subject Secret: %w", err)
	}
	created = append(created, subject)
	valuesSecret := ""
	if values != nil {
		vs := inputSecret(ns, prefix+"-values-", values.data())
		if err := c.Create(ctx, vs); err != nil {
			cleanup()
			return fmt.Errorf("creating the rectified values' Secret: %w", err)
		}
		created = append(created, vs)
		valuesSecret = vs.Name
	}
	dsr, err := o.request(ns, subject.Name, valuesSecret)
	if err != nil {
		cleanup()
		return err
	}
	if err := c.Create(ctx, dsr); err != nil {
		cleanup()
		return fmt.Errorf("the API server refused the request (its Secrets were deleted): %w", err)
	}
	// The Secrets now belong to the request: deleting the request deletes them.
	owner := metav1.OwnerReference{
		APIVersion: privacyv1.GroupVersion.String(), Kind: "DataSubjectRequest", Name: dsr.Name, UID: dsr.UID,
	}
	out := o.g.streams.Out
	if o.wait {
		out = o.g.streams.Err // stdout is the receipt's
	}
	for _, s := range created {
		before := s.DeepCopy()
		s.OwnerReferences = append(s.OwnerReferences, owner)
		if err := c.Patch(ctx, s, client.MergeFrom(before)); err != nil {
			fmt.Fprintf(o.g.streams.Err, "warning: could not make Secret %s owned by the request (%v); Lethe still deletes it when the request is complete\n", s.Name, o.g.redact(err.Error()))
		}
	}
	fmt.Fprintf(out, "secret/%s created (identity types: %s)\n", subject.Name, strings.Join(sortedKeys(ids.values), ", "))
	if values != nil {
		fmt.Fprintf(out, "secret/%s created (categories: %s)\n", valuesSecret, strings.Join(sortedKeys(values.values), ", "))
	}
	fmt.Fprintf(out, "datasubjectrequest.privacy.lethe.dev/%s created\n", dsr.Name)
	if !o.wait {
		fmt.Fprintf(out, "follow it with: kubectl lethe status %s -n %s\n", dsr.Name, ns)
		return nil
	}
	done, err := waitForRequest(ctx, c, client.ObjectKeyFromObject(dsr), o.timeout, o.progress())
	if err != nil {
		return err
	}
	return printCompleted(o.g.streams, done, o.output)
}

// progress is where --wait writes progress lines: standard error, on a terminal only.
func (o *requestOptions) progress() io.Writer {
	if o.g.streams.errIsTerminal() {
		return o.g.streams.Err
	}
	return nil
}

func valuesName(values *pairs, name string) string {
	if values == nil {
		return ""
	}
	return name
}

// printCompleted prints a completed request's receipt, with a warning when
// no store held data of the subject.
func printCompleted(s Streams, dsr *privacyv1.DataSubjectRequest, format string) error {
	if r := readyCondition(dsr); r != nil && r.Reason == privacyv1.ReasonSubjectNotFound {
		fmt.Fprintf(s.Err, "warning: %s: %s\n", r.Reason, r.Message)
	}
	return writeReceipt(s.Out, dsr, format)
}
