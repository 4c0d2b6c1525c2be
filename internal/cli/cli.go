// Package cli is kubectl-lethe, Lethe's companion CLI: it files data-subject
// requests without putting personal data in Git or in the request, shows
// their progress and receipts, verifies a receipt's digest, and starts
// retention sweeps. cmd/kubectl-lethe only calls Run.
//
// Identity values (and rectified values) are personal data: the CLI writes
// them to a Secret and nowhere else. They never appear in its output, its
// progress lines or its errors.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Streams are the CLI's input and outputs.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
	// Terminal reports whether progress lines may be written to Err. Nil:
	// true when Err is a terminal.
	Terminal func() bool
}

// StdStreams are the process's standard streams.
func StdStreams() Streams {
	return Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
}

func (s Streams) errIsTerminal() bool {
	if s.Terminal != nil {
		return s.Terminal()
	}
	return isTerminal(s.Err)
}

// isTerminal: w is a character device (a terminal), not a file or a pipe.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Run runs kubectl-lethe with args (without the program name) and returns
// the process's exit code: 0 on success, 1 on any error (printed to Err as
// "error: ...").
func Run(ctx context.Context, args []string, s Streams) int {
	g := &globalOptions{streams: s}
	root := newRootCommand(g)
	root.SetArgs(args)
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(s.Err, "error: "+g.redact(err.Error()))
		return 1
	}
	return 0
}

// globalOptions are the flags every command has, and what one run learns.
type globalOptions struct {
	kubeconfig, context, namespace string
	streams                        Streams
	// sensitive are the personal values this run was given (identities,
	// rectified values): no error message may carry them.
	sensitive []string
}

// addSensitive records values that must never be printed.
func (g *globalOptions) addSensitive(values ...string) {
	for _, v := range values {
		if v != "" {
			g.sensitive = append(g.sensitive, v)
		}
	}
}

// redact removes every sensitive value from msg: a last line of defence, as
// no message is built from them in the first place.
func (g *globalOptions) redact(msg string) string {
	vals := append([]string(nil), g.sensitive...)
	sort.Slice(vals, func(i, j int) bool { return len(vals[i]) > len(vals[j]) })
	for _, v := range vals {
		msg = strings.ReplaceAll(msg, v, "[redacted]")
	}
	return msg
}

func newRootCommand(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "kubectl-lethe",
		Short: "File data-subject requests, follow them, print and verify their receipts, run retention sweeps",
		Long: `kubectl lethe is Lethe's companion CLI.

It files Access, Erasure and Rectification requests with the subject's
identities in a Secret (never in the request), follows them, prints their
receipts as JSON or Markdown, recomputes a receipt's digest, and starts a
RetentionPolicy's sweep at once.

Identity values are never printed, in output or in errors.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl lethe"},
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	pf := root.PersistentFlags()
	pf.StringVar(&g.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	pf.StringVar(&g.context, "context", "", "the kubeconfig context to use (default: its current context)")
	pf.StringVarP(&g.namespace, "namespace", "n", "", "the namespace (default: the context's namespace, else default)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return sanitizeFlagError(err) })

	root.AddCommand(
		newRequestCommand(g, privacyv1.RequestErasure),
		newRequestCommand(g, privacyv1.RequestAccess),
		newRequestCommand(g, privacyv1.RequestRectification),
		newStatusCommand(g),
		newReceiptCommand(g),
		newSweepCommand(g),
		newRopaCommand(g),
		newScaffoldCommand(g),
	)
	return root
}

// shorthandContext is what pflag appends to an unknown shorthand flag error:
// the whole argument, which may be "-email=jane@example.com".
var shorthandContext = regexp.MustCompile(` in -\S*`)

// sanitizeFlagError keeps flag errors from echoing an argument's value.
func sanitizeFlagError(err error) error {
	return errors.New(shorthandContext.ReplaceAllString(err.Error(), "") + " (see --help)")
}

// scheme has the core kinds and Lethe's, as the manager's.
func scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := privacyv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// connect builds a client from the kubeconfig flags and returns it with the
// namespace to work in.
func (g *globalOptions) connect() (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = g.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: g.context}
	if g.namespace != "" {
		overrides.Context.Namespace = g.namespace
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("reading the kubeconfig: %w", err)
	}
	cfg.UserAgent = "kubectl-lethe"
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	if ns == "" {
		ns = "default"
	}
	s, err := scheme()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, "", fmt.Errorf("connecting to the API server: %w", err)
	}
	return c, ns, nil
}
