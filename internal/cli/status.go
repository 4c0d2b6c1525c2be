package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

type statusOptions struct {
	g             *globalOptions
	allNamespaces bool
}

func newStatusCommand(g *globalOptions) *cobra.Command {
	o := &statusOptions{g: g}
	cmd := &cobra.Command{
		Use:   "status [REQUEST]",
		Short: "List requests with their progress, deadlines and holds, or show one in detail",
		Long: `Without REQUEST, list the namespace's DataSubjectRequests: type, Ready and its
reason, stores done out of stores in scope, the deadline, the LegalHolds that
keep some of the subject's data, and age.

With REQUEST, show it in detail: conditions, each store's phase, attempts,
check and holds, each collection's outcome, the export and what became of the
Secrets that handed it personal data.`,
		Example: `  kubectl lethe status -n shop
  kubectl lethe status -A
  kubectl lethe status erasure-7xk2p -n shop`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := g.connect()
			if err != nil {
				return err
			}
			now := time.Now()
			if len(args) == 1 {
				if o.allNamespaces {
					return fmt.Errorf("--all-namespaces lists requests; to show one, name its namespace with -n")
				}
				dsr := &privacyv1.DataSubjectRequest{}
				if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, dsr); err != nil {
					return fmt.Errorf("reading request %s: %w", args[0], err)
				}
				return describe(g.streams.Out, dsr, now)
			}
			list := &privacyv1.DataSubjectRequestList{}
			var opts []client.ListOption
			if !o.allNamespaces {
				opts = append(opts, client.InNamespace(ns))
			}
			if err := c.List(cmd.Context(), list, opts...); err != nil {
				return fmt.Errorf("listing requests: %w", err)
			}
			if len(list.Items) == 0 {
				where := fmt.Sprintf("in namespace %s", ns)
				if o.allNamespaces {
					where = "in any namespace"
				}
				fmt.Fprintf(g.streams.Err, "No DataSubjectRequest %s.\n", where)
				return nil
			}
			return listRequests(g.streams.Out, list.Items, o.allNamespaces, now)
		},
	}
	cmd.Flags().BoolVarP(&o.allNamespaces, "all-namespaces", "A", false, "list the requests of every namespace")
	return cmd
}

func listRequests(w io.Writer, items []privacyv1.DataSubjectRequest, allNamespaces bool, now time.Time) error {
	sort.Slice(items, func(i, j int) bool {
		if items[i].Namespace != items[j].Namespace {
			return items[i].Namespace < items[j].Namespace
		}
		return items[i].Name < items[j].Name
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if allNamespaces {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, "NAME\tTYPE\tREADY\tREASON\tSTORES\tDEADLINE\tHOLDS\tAGE")
	for i := range items {
		dsr := &items[i]
		if allNamespaces {
			fmt.Fprintf(tw, "%s\t", dsr.Namespace)
		}
		ready, reason := "Unknown", "-"
		if r := readyCondition(dsr); r != nil {
			ready, reason = string(r.Status), r.Reason
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dsr.Name, typeOf(dsr), ready, reason,
			storesDone(dsr), deadlineState(dsr, now), orDash(strings.Join(holds(dsr), ",")), age(dsr.CreationTimestamp, now))
	}
	return tw.Flush()
}

func typeOf(dsr *privacyv1.DataSubjectRequest) string {
	if dsr.Spec.DryRun {
		return string(dsr.Spec.Type) + " (dry run)"
	}
	return string(dsr.Spec.Type)
}

// deadlineState says where the request stands against its deadline.
func deadlineState(dsr *privacyv1.DataSubjectRequest, now time.Time) string {
	dl := dsr.Status.Deadline
	switch {
	case dl == nil:
		return "-"
	case dsr.Status.CompletionTime != nil && !dsr.Status.CompletionTime.After(dl.Time):
		return "met"
	case dsr.Status.CompletionTime != nil:
		return "missed by " + duration.HumanDuration(dsr.Status.CompletionTime.Sub(dl.Time))
	case now.After(dl.Time) || apimeta.IsStatusConditionTrue(dsr.Status.Conditions, privacyv1.ConditionDeadlineExceeded):
		return "exceeded " + duration.HumanDuration(now.Sub(dl.Time)) + " ago"
	default:
		return "in " + duration.HumanDuration(dl.Sub(now))
	}
}

func age(t metav1.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOf(t *metav1.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// describe shows one request in detail. Nothing in status is personal data:
// the subject is only its keyed digest.
func describe(w io.Writer, dsr *privacyv1.DataSubjectRequest, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	kv := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	kv("Name", dsr.Name)
	kv("Namespace", dsr.Namespace)
	kv("Type", string(dsr.Spec.Type))
	kv("Dry run", yesNo(dsr.Spec.DryRun))
	kv("Created", timeOf(&dsr.CreationTimestamp)+" ("+age(dsr.CreationTimestamp, now)+" ago)")
	scope := "every store of the namespace"
	if len(dsr.Spec.Scope.Stores) > 0 {
		scope = "stores " + joinNames(dsr.Spec.Scope.Stores)
	}
	if sel := dsr.Spec.Scope.StoreSelector; sel != nil {
		scope += ", selected by " + metav1.FormatLabelSelector(sel)
	}
	if len(dsr.Spec.Scope.Categories) > 0 {
		scope += "; categories " + joinNames(dsr.Spec.Scope.Categories)
	} else {
		scope += "; every category but customer.content"
	}
	kv("Scope", scope)
	if f := dsr.Spec.Subject.IdentitiesFrom; f != nil {
		kv("Subject Secret", f.SecretRef.Name)
	} else {
		kv("Subject", "inline identities (types "+strings.Join(sortedKeys(dsr.Spec.Subject.Identities), ", ")+")")
	}
	if r := readyCondition(dsr); r != nil {
		kv("Ready", fmt.Sprintf("%s (%s): %s", r.Status, r.Reason, r.Message))
	} else {
		kv("Ready", "Unknown: the controller has not seen the request yet")
	}
	kv("Subject digest", orDash(dsr.Status.SubjectDigest))
	kv("Deadline", timeOf(dsr.Status.Deadline)+" ("+deadlineState(dsr, now)+")")
	kv("Started", timeOf(dsr.Status.StartTime))
	kv("Completed", timeOf(dsr.Status.CompletionTime))
	kv("Stores done", storesDone(dsr))
	kv("Holds", orDash(strings.Join(holds(dsr), ", ")))
	kv("Receipt digest", orDash(dsr.Status.ReceiptDigest))
	if err := tw.Flush(); err != nil {
		return err
	}

	if len(dsr.Status.Conditions) > 0 {
		fmt.Fprintln(w, "\nConditions:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tSINCE\tMESSAGE")
		for _, c := range dsr.Status.Conditions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, age(c.LastTransitionTime, now), oneLine(c.Message))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	if len(dsr.Status.Stores) > 0 {
		fmt.Fprintln(w, "\nStores:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  STORE\tPHASE\tATTEMPTS\tVERIFIED\tJOURNALED\tHELD BY\tCOMPLETED\tMESSAGE")
		for _, s := range dsr.Status.Stores {
			verified := "-"
			if s.Verified != nil {
				verified = yesNo(*s.Verified)
			}
			msg := s.Message
			if s.Reason != "" {
				msg = s.Reason + ": " + msg
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", s.Store, s.Phase, s.Attempts, verified, yesNo(s.Journaled),
				orDash(strings.Join(s.HeldBy, ",")), timeOf(s.CompletionTime), orDash(oneLine(msg)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, s := range dsr.Status.Stores {
			if len(s.Collections) == 0 {
				continue
			}
			fmt.Fprintf(w, "\nCollections of %s:\n", s.Store)
			tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "  COLLECTION\tACTION\tROWS\tREMAINING\tRETAINED UNTIL\tREASON")
			for _, c := range s.Collections {
				remaining := "-"
				if c.Remaining != nil {
					remaining = strconv.FormatInt(*c.Remaining, 10)
				}
				fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\t%s\t%s\n", c.Collection, c.Action, c.Rows, remaining, orDash(retainedUntil(c)), orDash(oneLine(c.Reason)))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}

	if ref := dsr.Status.ExportSecretRef; ref != nil {
		parts := []string{ref.Name}
		if len(dsr.Status.ExportParts) > 0 {
			parts = parts[:0]
			for _, p := range dsr.Status.ExportParts {
				parts = append(parts, p.Name)
			}
		}
		state := "expires " + timeOf(dsr.Status.ExportExpiresAt)
		if dsr.Status.ExportDeletedAt != nil {
			state = "deleted " + timeOf(dsr.Status.ExportDeletedAt)
		}
		enc := "in clear"
		if dsr.Status.ExportEncrypted {
			enc = "encrypted"
		}
		fmt.Fprintf(w, "\nExport: Secret(s) %s, %d byte(s), %s; %s\n", strings.Join(parts, ", "), dsr.Status.ExportBytes, enc, state)
	}

	if len(dsr.Status.InputSecrets) > 0 {
		fmt.Fprintln(w, "\nInput Secrets:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tPURPOSE\tSTATE\tSINCE\tMESSAGE")
		for _, in := range dsr.Status.InputSecrets {
			since := "-"
			if in.Time != nil {
				since = timeOf(in.Time)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", in.Name, in.Purpose, in.State, since, orDash(oneLine(in.Message)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func joinNames[S ~string](names []S) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = string(n)
	}
	return strings.Join(out, ", ")
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
