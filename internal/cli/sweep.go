package cli

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func newSweepCommand(g *globalOptions) *cobra.Command {
	sweep := &cobra.Command{
		Use:   "sweep",
		Short: "Retention sweeps",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	run := &cobra.Command{
		Use:   "run POLICY",
		Short: "Run a RetentionPolicy's sweep now",
		Long: `Set the annotation ` + privacyv1.AnnotationRunNow + ` of the RetentionPolicy to a new
value (the current time, RFC 3339 with nanoseconds): the controller starts a
run at once (after the run in progress, if any), once per value; the schedule
goes on as before. A suspended policy keeps the request until suspend is
turned off. Follow the run with kubectl get rpol POLICY -o yaml (status.lastRunNowValue
is the value once the run has started).`,
		Example: `  kubectl lethe sweep run billing-retention -n shop`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := g.connect()
			if err != nil {
				return err
			}
			pol := &privacyv1.RetentionPolicy{}
			key := client.ObjectKey{Namespace: ns, Name: args[0]}
			if err := c.Get(cmd.Context(), key, pol); err != nil {
				return fmt.Errorf("reading RetentionPolicy %s: %w", args[0], err)
			}
			value := runNowValue(time.Now(), pol)
			patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
				"annotations": map[string]string{privacyv1.AnnotationRunNow: value},
			}})
			if err != nil {
				return err
			}
			if err := c.Patch(cmd.Context(), pol, client.RawPatch(types.MergePatchType, patch)); err != nil {
				return fmt.Errorf("setting %s on RetentionPolicy %s: %w", privacyv1.AnnotationRunNow, args[0], err)
			}
			fmt.Fprintf(g.streams.Out, "retentionpolicy.privacy.lethe.dev/%s: run requested (%s=%s)\n", pol.Name, privacyv1.AnnotationRunNow, value)
			if pol.Spec.Suspend {
				fmt.Fprintf(g.streams.Err, "warning: RetentionPolicy %s is suspended: the run waits until spec.suspend is false\n", pol.Name)
			}
			return nil
		},
	}
	sweep.AddCommand(run)
	return sweep
}

// runNowValue is a value the policy has not run for: the time, made unique
// if the annotation or status.lastRunNowValue already has it.
func runNowValue(now time.Time, pol *privacyv1.RetentionPolicy) string {
	base := now.UTC().Format(time.RFC3339Nano)
	v := base
	for i := 1; v == pol.Annotations[privacyv1.AnnotationRunNow] || v == pol.Status.LastRunNowValue; i++ {
		v = fmt.Sprintf("%s-%d", base, i)
	}
	return v
}
