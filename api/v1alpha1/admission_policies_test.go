package v1alpha1_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/testenv"
)

// The admission policies of config/admission, as config/default renders them
// (names prefixed lethe-, the manager's ServiceAccount filled in), served by
// the real kube-apiserver of the suite.

var (
	installPolicies sync.Once
	policiesErr     error
)

// renderKustomize renders dir (relative to config/) with the envtest kubectl.
func renderKustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	cmd := exec.Command(kubectl, "kustomize", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
	return objs
}

func admissionObjects(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// requirePolicies installs config/default's admission policies and bindings
// once, and waits until the API server enforces them.
func requirePolicies(t *testing.T) {
	t.Helper()
	installPolicies.Do(func() {
		objs := renderKustomize(t, filepath.Join(testenv.RepoRoot(), "config", "default"))
		policies := admissionObjects(objs, "ValidatingAdmissionPolicy")
		bindings := admissionObjects(objs, "ValidatingAdmissionPolicyBinding")
		if len(policies) != 4 || len(bindings) != 4 {
			policiesErr = fmt.Errorf("config/default renders %d policies and %d bindings, want 4 and 4", len(policies), len(bindings))
			return
		}
		for _, o := range append(policies, bindings...) {
			o.SetNamespace("") // cluster-scoped (kustomize adds one: kubernetes-sigs/kustomize#6051)
			if err := env.Client.Create(context.Background(), o); err != nil {
				policiesErr = fmt.Errorf("creating %s %s: %w", o.GetKind(), o.GetName(), err)
				return
			}
		}
		// Envtest runs no kube-controller-manager, which writes the policies'
		// type-checking status: the tests below prove every expression
		// compiles (a policy that does not fails every request it matches,
		// and the changes that keep protection are accepted).
	})
	if policiesErr != nil {
		t.Fatal(policiesErr)
	}
}

// eventuallyRefused retries op until the API server refuses it (a new policy
// or binding takes a moment to be enforced) and returns the refusal.
func eventuallyRefused(t *testing.T, op func() error) error {
	t.Helper()
	var err error
	testenv.Eventually(t, 20*time.Second, func() error {
		if err = op(); err == nil {
			return errors.New("accepted, want a refusal")
		}
		return nil
	})
	return err
}

func inlineErasure(ns, name string) *v1.DataSubjectRequest {
	r := validRequest()
	r.Namespace, r.Name = ns, name
	r.Spec.Subject = v1.Subject{Identities: v1.Identities{"email": "someone@example.com"}}
	return r
}

func TestInlineIdentitiesAreRefusedForErasureUnlessTheOperatorAllowsThem(t *testing.T) {
	requirePolicies(t)
	ns := env.Namespace(t)
	ctx := t.Context()
	dryRun := func(obj client.Object) error { return env.Client.Create(ctx, obj, client.DryRunAll) }

	err := eventuallyRefused(t, func() error { return dryRun(inlineErasure(ns, "erase-inline")) })
	msg := err.Error()
	for _, want := range []string{"inline identities (spec.subject.identities) are refused for Erasure requests",
		"spec.subject.identitiesFrom.secretRef.name", "privacy.lethe.dev/consume=true", "admission.allowInlineIdentities"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "someone@example.com") {
		t.Errorf("the refusal repeats the identity: %q", msg)
	}
	dry := inlineErasure(ns, "erase-inline-dry")
	dry.Spec.DryRun = true
	if err := dryRun(dry); err == nil {
		t.Error("a dry-run Erasure with inline identities was accepted: it stores them as well")
	}

	// Not concerned: the Secret form, and other request types.
	accepted := []*v1.DataSubjectRequest{validRequest()}
	access := inlineErasure(ns, "access-inline")
	access.Spec.Type = v1.RequestAccess
	accepted = append(accepted, access)
	rect := inlineErasure(ns, "rectify-inline")
	rect.Spec.Type = v1.RequestRectification
	rect.Spec.Rectification = &v1.Rectification{Values: map[string]string{"user.contact.name": "A. Person"}}
	accepted = append(accepted, rect)
	for _, r := range accepted {
		r.Namespace = ns
		if err := env.Client.Create(ctx, r); err != nil {
			t.Errorf("%s %s refused: %v", r.Spec.Type, r.Name, err)
		}
	}

	// The switch: without the binding (components/allow-inline-identities,
	// Helm admission.allowInlineIdentities) inline identities are accepted.
	overlay := t.TempDir()
	rel, _ := filepath.Rel(overlay, filepath.Join(testenv.RepoRoot(), "config"))
	kust := fmt.Sprintf("resources: [%s/default]\ncomponents: [%s/components/allow-inline-identities]\n", rel, rel)
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kust), 0o600); err != nil {
		t.Fatal(err)
	}
	rendered := renderKustomize(t, overlay)
	var bindings []string
	for _, b := range admissionObjects(rendered, "ValidatingAdmissionPolicyBinding") {
		bindings = append(bindings, b.GetName())
	}
	if strings.Join(bindings, ",") != "lethe-datastore-protection,lethe-manager-secret-deletion,lethe-retentionpolicy-protection" {
		t.Fatalf("with the component, the bindings are %v; want all but lethe-inline-identities", bindings)
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "lethe-inline-identities"}, binding); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Delete(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // the rest of the suite runs with the default
		binding.ResourceVersion, binding.UID = "", ""
		if err := env.Client.Create(context.Background(), binding); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Errorf("restoring the binding: %v", err)
		}
	})
	testenv.Eventually(t, 20*time.Second, func() error { return env.Client.Create(ctx, inlineErasure(ns, "erase-allowed")) })
}

func TestExportSettingsAreCheckedAtAdmission(t *testing.T) {
	ns := env.Namespace(t)
	const key = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
	access := func(mutate func(*v1.DataSubjectRequest)) *v1.DataSubjectRequest {
		r := validRequest()
		r.Namespace, r.Spec.Type = ns, v1.RequestAccess
		r.Spec.Export = &v1.ExportSpec{TTL: "7d", Recipients: []v1.AgeRecipient{key}}
		mutate(r)
		return r
	}
	ok := access(func(r *v1.DataSubjectRequest) { r.Name = "access-ok" })
	if err := env.Client.Create(t.Context(), ok); err != nil {
		t.Fatalf("a valid export setting was refused: %v", err)
	}
	cases := map[string]struct {
		mutate func(*v1.DataSubjectRequest)
		want   string
	}{
		"export on an erasure": {func(r *v1.DataSubjectRequest) { r.Spec.Type = v1.RequestErasure }, "export applies only to type Access"},
		"ssh key": {func(r *v1.DataSubjectRequest) {
			r.Spec.Export.Recipients = []v1.AgeRecipient{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"}
		}, "spec.export.recipients[0]"},
		"a private key": {func(r *v1.DataSubjectRequest) {
			r.Spec.Export.Recipients = []v1.AgeRecipient{"AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"}
		}, "spec.export.recipients[0]"},
		"a truncated key": {func(r *v1.DataSubjectRequest) {
			r.Spec.Export.Recipients = []v1.AgeRecipient{v1.AgeRecipient(key[:40])}
		}, "spec.export.recipients[0]"},
		"ttl in words": {func(r *v1.DataSubjectRequest) { r.Spec.Export.TTL = "30 days" }, "spec.export.ttl"},
	}
	i := 0
	for name, tc := range cases {
		r := access(tc.mutate)
		r.Name = fmt.Sprintf("export-%d", i)
		i++
		err := env.Client.Create(t.Context(), r)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a refusal mentioning %q", name, err, tc.want)
		}
	}
}
