package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/audit"
)

// receiptDocument is a receipt as kubectl lethe prints it in JSON: exactly
// what the digest covers (receipt), the digest, and, apart, what it does not
// cover (details), which changes after completion (input Secrets deleted,
// the export expired).
type receiptDocument struct {
	// Receipt is what status.receiptDigest covers (audit.Receipt).
	Receipt audit.Receipt `json:"receipt"`
	// ReceiptDigest is status.receiptDigest.
	ReceiptDigest string `json:"receiptDigest"`
	// Verified is set by --verify: the digest recomputed from receipt is receiptDigest.
	Verified *bool `json:"verified,omitempty"`
	// Details are not covered by the digest.
	Details receiptDetails `json:"details"`
}

type receiptDetails struct {
	Ready                 *conditionSummary              `json:"ready,omitempty"`
	Deadline              *metav1.Time                   `json:"deadline,omitempty"`
	DeadlineMet           *bool                          `json:"deadlineMet,omitempty"`
	Export                *exportSummary                 `json:"export,omitempty"`
	InputSecrets          []privacyv1.InputSecretOutcome `json:"inputSecrets,omitempty"`
	IdentitiesDiscardedAt *metav1.Time                   `json:"identitiesDiscardedAt,omitempty"`
}

type conditionSummary struct {
	Status  metav1.ConditionStatus `json:"status"`
	Reason  string                 `json:"reason"`
	Message string                 `json:"message,omitempty"`
}

type exportSummary struct {
	Secrets   []string     `json:"secrets"`
	Bytes     int64        `json:"bytes,omitempty"`
	Encrypted bool         `json:"encrypted,omitempty"`
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	DeletedAt *metav1.Time `json:"deletedAt,omitempty"`
}

// errNoReceipt: the request is not complete, so it has no receipt yet.
var errNoReceipt = errors.New("no receipt yet")

// documentOf is a completed request's receipt document.
func documentOf(dsr *privacyv1.DataSubjectRequest) (*receiptDocument, error) {
	if dsr.Status.ReceiptDigest == "" || dsr.Status.StartTime == nil || dsr.Status.CompletionTime == nil {
		state := "no status yet"
		if r := readyCondition(dsr); r != nil {
			state = fmt.Sprintf("Ready=%s, %s", r.Status, r.Reason)
		}
		return nil, fmt.Errorf("request %s/%s has %w: it is not complete (%s); follow it with kubectl lethe status %s -n %s",
			dsr.Namespace, dsr.Name, errNoReceipt, state, dsr.Name, dsr.Namespace)
	}
	doc := &receiptDocument{Receipt: audit.ReceiptOf(dsr), ReceiptDigest: dsr.Status.ReceiptDigest}
	d := &doc.Details
	if r := readyCondition(dsr); r != nil {
		d.Ready = &conditionSummary{Status: r.Status, Reason: r.Reason, Message: r.Message}
	}
	if dl := dsr.Status.Deadline; dl != nil {
		d.Deadline = dl
		met := !dsr.Status.CompletionTime.After(dl.Time)
		d.DeadlineMet = &met
	}
	if ref := dsr.Status.ExportSecretRef; ref != nil {
		e := &exportSummary{Bytes: dsr.Status.ExportBytes, Encrypted: dsr.Status.ExportEncrypted,
			ExpiresAt: dsr.Status.ExportExpiresAt, DeletedAt: dsr.Status.ExportDeletedAt}
		for _, p := range dsr.Status.ExportParts {
			e.Secrets = append(e.Secrets, p.Name)
		}
		if len(e.Secrets) == 0 {
			e.Secrets = []string{ref.Name}
		}
		d.Export = e
	}
	d.InputSecrets = dsr.Status.InputSecrets
	d.IdentitiesDiscardedAt = dsr.Status.IdentitiesDiscardedAt
	return doc, nil
}

// verify recomputes the digest of the receipt with the controller's code
// (audit.ReceiptDigest of audit.Receipt) and compares it with receiptDigest.
func (doc *receiptDocument) verify() error {
	got, err := audit.ReceiptDigest(doc.Receipt)
	if err != nil {
		return fmt.Errorf("recomputing the receipt digest: %w", err)
	}
	if got != doc.ReceiptDigest {
		f := false
		doc.Verified = &f
		return fmt.Errorf("receipt verification FAILED for %s: the receipt recomputes to %s, but its recorded digest is %q; the receipt was changed after Lethe completed the request",
			doc.Receipt.Request, got, doc.ReceiptDigest)
	}
	t := true
	doc.Verified = &t
	return nil
}

type receiptOptions struct {
	g      *globalOptions
	output string
	verify bool
	file   string
}

func newReceiptCommand(g *globalOptions) *cobra.Command {
	o := &receiptOptions{g: g}
	cmd := &cobra.Command{
		Use:   "receipt (REQUEST | --file FILE) [-o markdown|json] [--verify]",
		Short: "Print a completed request's receipt as Markdown or JSON, and verify its digest",
		Long: `Print a completed request's receipt: per store and collection the action, the
rows, what was retained and why (until when), what remains after the check,
the times and the subject's keyed digest. Never an identity.

--verify recomputes the receipt digest from the receipt with the code the
controller uses and compares it with status.receiptDigest: when they differ
the receipt was changed after the request completed, nothing is printed on
standard output and the command exits 1.

--file reads a receipt saved with -o json instead of the cluster; with
--verify it checks that copy against the digest it carries.`,
		Example: `  kubectl lethe receipt erasure-7xk2p -n shop --verify
  kubectl lethe receipt erasure-7xk2p -n shop -o json > receipt.json
  kubectl lethe receipt --file receipt.json --verify`,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case o.file == "" && len(args) != 1:
				return errors.New("receipt needs the request's name (or --file FILE)")
			case o.file != "" && len(args) != 0:
				return errors.New("give either a request's name or --file, not both")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.output != "markdown" && o.output != "json" {
				return errors.New("--output must be markdown or json")
			}
			var doc *receiptDocument
			var err error
			if o.file != "" {
				doc, err = readDocument(o.file, g.streams.In)
			} else {
				doc, err = o.fetch(cmd, args[0])
			}
			if err != nil {
				return err
			}
			if o.verify {
				if err := doc.verify(); err != nil {
					return err
				}
			}
			return renderReceipt(g.streams.Out, doc, o.output)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "markdown", "format: markdown or json")
	cmd.Flags().BoolVar(&o.verify, "verify", false, "recompute the receipt digest and exit 1 if it does not match")
	cmd.Flags().StringVarP(&o.file, "file", "f", "", "read a receipt saved with -o json (- reads standard input) instead of the cluster")
	return cmd
}

func (o *receiptOptions) fetch(cmd *cobra.Command, name string) (*receiptDocument, error) {
	c, ns, err := o.g.connect()
	if err != nil {
		return nil, err
	}
	dsr := &privacyv1.DataSubjectRequest{}
	if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: name}, dsr); err != nil {
		return nil, fmt.Errorf("reading request %s: %w", name, err)
	}
	return documentOf(dsr)
}

func readDocument(name string, stdin io.Reader) (*receiptDocument, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, 16<<20))
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the receipt file: %w", err)
	}
	doc := &receiptDocument{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(doc); err != nil {
		return nil, fmt.Errorf("the receipt file is not a receipt saved with kubectl lethe receipt -o json: %w", err)
	}
	if doc.ReceiptDigest == "" || doc.Receipt.Request == "" {
		return nil, errors.New("the receipt file has no receipt or no receiptDigest")
	}
	doc.Verified = nil // only this run's --verify says so
	return doc, nil
}

// writeReceipt prints a completed request's receipt.
func writeReceipt(w io.Writer, dsr *privacyv1.DataSubjectRequest, format string) error {
	doc, err := documentOf(dsr)
	if err != nil {
		return err
	}
	return renderReceipt(w, doc, format)
}

func renderReceipt(w io.Writer, doc *receiptDocument, format string) error {
	if format == "json" {
		b, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	_, err := io.WriteString(w, markdown(doc))
	return err
}

// markdown renders the receipt for people: a regulator, a DPO, a ticket.
func markdown(doc *receiptDocument) string {
	r := doc.Receipt
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	title := map[string]string{"Erasure": "Erasure", "Access": "Access", "Rectification": "Rectification"}[r.Type]
	if title == "" {
		title = r.Type
	}
	p("# Receipt: %s request %s\n\n", title, mdCode(r.Request))
	p("| | |\n|---|---|\n")
	p("| Request | %s |\n", mdCode(r.Request))
	p("| UID | %s |\n", mdCode(r.UID))
	p("| Type | %s |\n", mdCell(r.Type))
	p("| Dry run | %s |\n", yesNo(r.DryRun))
	p("| Subject digest | %s |\n", mdCode(r.SubjectDigest))
	p("| Started | %s |\n", mdCell(r.StartTime))
	p("| Completed | %s |\n", mdCell(r.CompletionTime))
	d := doc.Details
	if d.Deadline != nil {
		met := ""
		if d.DeadlineMet != nil {
			met = map[bool]string{true: " (met)", false: " (missed)"}[*d.DeadlineMet]
		}
		p("| Deadline | %s%s |\n", d.Deadline.UTC().Format(time.RFC3339), met)
	}
	if d.Ready != nil {
		p("| Outcome | %s: %s |\n", mdCell(d.Ready.Reason), mdCell(d.Ready.Message))
	}
	if r.DryRun {
		p("\nThis was a dry run: the rows are what the request would change. Nothing was changed.\n")
	}
	for _, s := range r.Stores {
		p("\n## Store %s: %s\n\n", mdCode(s.Store), mdCell(string(s.Phase)))
		var facts []string
		if s.CompletionTime != nil {
			facts = append(facts, "completed "+s.CompletionTime.UTC().Format(time.RFC3339))
		}
		if s.Journaled {
			facts = append(facts, "counts read from the store's journal")
		}
		if s.Verified != nil {
			facts = append(facts, map[bool]string{true: "checked after commit: nothing left", false: "checked after commit: something was left"}[*s.Verified])
		}
		if len(s.HeldBy) > 0 {
			facts = append(facts, "held by "+strings.Join(s.HeldBy, ", "))
		}
		if s.Attempts > 0 {
			facts = append(facts, fmt.Sprintf("%d attempt(s)", s.Attempts))
		}
		if len(facts) > 0 {
			p("%s.\n\n", mdCell(upperFirst(strings.Join(facts, "; "))))
		}
		if s.Message != "" {
			p("%s\n\n", mdCell(s.Message))
		}
		if len(s.Collections) == 0 {
			p("No collection of this store holds data of the subject.\n")
			continue
		}
		p("| Collection | Action | Rows | Remaining | Reason | Retained until |\n|---|---|---:|---:|---|---|\n")
		for _, c := range s.Collections {
			remaining := ""
			if c.Remaining != nil {
				remaining = strconv.FormatInt(*c.Remaining, 10)
			}
			p("| %s | %s | %d | %s | %s | %s |\n", mdCell(c.Collection), mdCell(c.Action), c.Rows, remaining, mdCell(c.Reason), retainedUntil(c))
		}
	}
	if e := d.Export; e != nil {
		p("\n## Export\n\n")
		p("Secret(s) %s, %d byte(s)", mdCell(strings.Join(e.Secrets, ", ")), e.Bytes)
		if e.Encrypted {
			p(", encrypted to the requester")
		}
		if e.DeletedAt != nil {
			p("; deleted %s", e.DeletedAt.UTC().Format(time.RFC3339))
		} else if e.ExpiresAt != nil {
			p("; expires %s", e.ExpiresAt.UTC().Format(time.RFC3339))
		}
		p(".\n")
	}
	if len(d.InputSecrets) > 0 {
		p("\n## Secrets that handed the request personal data\n\n| Secret | Purpose | State | Since |\n|---|---|---|---|\n")
		for _, in := range d.InputSecrets {
			since := ""
			if in.Time != nil {
				since = in.Time.UTC().Format(time.RFC3339)
			}
			state := string(in.State)
			if in.Message != "" {
				state += ": " + in.Message
			}
			p("| %s | %s | %s | %s |\n", mdCode(in.Name), mdCell(string(in.Purpose)), mdCell(state), since)
		}
	}
	p("\n## Digest\n\n%s\n", mdCode(doc.ReceiptDigest))
	switch {
	case doc.Verified == nil:
		p("\nNot verified here: run `kubectl lethe receipt --verify`.\n")
	case *doc.Verified:
		p("\nVerified: the digest recomputed from this receipt matches.\n")
	}
	return b.String()
}

func retainedUntil(c privacyv1.CollectionOutcome) string {
	switch {
	case c.RetainedUntil == nil:
		return ""
	case c.RetainedUntilEarliest != nil && !c.RetainedUntilEarliest.Equal(c.RetainedUntil):
		return c.RetainedUntilEarliest.UTC().Format("2006-01-02") + " to " + c.RetainedUntil.UTC().Format("2006-01-02")
	default:
		return c.RetainedUntil.UTC().Format("2006-01-02")
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// mdCell makes text safe in a Markdown table cell: no line break, no pipe.
func mdCell(s string) string {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "|", `\|`).Replace(s)
	return s
}

// mdCode is s as inline code (s has no backtick: names and digests).
func mdCode(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(mdCell(s), "`", "'") + "`"
}
