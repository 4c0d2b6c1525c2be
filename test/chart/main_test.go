// Package chart_test checks the Helm chart (charts/lethe): rendered with the
// Helm SDK (as `helm template` does: no cluster), linted, compared with what
// kustomize renders from config/ so the two installations cannot drift, and
// applied to a real API server (envtest), whose RBAC then lets the real manager
// binary run with the chart's arguments.
package chart_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/lethe-dev/lethe/internal/testenv"
)

// The control plane has no CRD installed by envtest: the chart's own CRDs are
// applied by the tests, as `helm install` would.
var (
	cfg           *rest.Config
	k8s           client.Client
	kubeconfigDir string
)

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		home, _ := os.UserHomeDir()
		os.Setenv("KUBEBUILDER_ASSETS", filepath.Join(home, ".local/share/kubebuilder-envtest/k8s/1.37.2-linux-amd64"))
	}
	env := &envtest.Environment{}
	var err error
	cfg, err = env.Start()
	if err != nil {
		_ = env.Stop()
		fmt.Fprintln(os.Stderr, "cannot start envtest (run `make envtest`):", err)
		os.Exit(1)
	}
	k8s, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err == nil {
		kubeconfigDir, err = os.MkdirTemp("", "lethe-chart-")
	}
	if err != nil {
		_ = env.Stop()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.RemoveAll(kubeconfigDir)
	os.Exit(code)
}

// kubectl runs kubectl against the test control plane as its admin.
func kubectl(t *testing.T, stdin []byte, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(testenv.KubectlPath(t), append([]string{"--kubeconfig", kubeconfig(t, "")}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// kustomize renders config/<dir> (or dir, when absolute) as `kubectl kustomize` does.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	path := dir
	if !filepath.IsAbs(dir) {
		path = testenv.RepoPath("config", dir)
	}
	kustomized.Lock()
	defer kustomized.Unlock()
	out, ok := kustomized.out[path]
	if !ok {
		cmd := exec.Command(testenv.KubectlPath(t), "kustomize", path)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		var err error
		if out, err = cmd.Output(); err != nil {
			t.Fatalf("kubectl kustomize config/%s: %v\n%s", dir, err, errb.String())
		}
		kustomized.out[path] = out
	}
	return decode(t, out)
}

// kustomized caches renderings: config/ does not change during a test run.
var kustomized = struct {
	sync.Mutex
	out map[string][]byte
}{out: map[string][]byte{}}

func decode(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if err == io.EOF {
				return out
			}
			t.Fatalf("decoding manifests: %v", err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// kubeconfig writes a kubeconfig for the control plane, acting as asUser
// (impersonated, with a ServiceAccount's groups when it is one) when not empty.
func kubeconfig(t *testing.T, asUser string, groups ...string) string {
	t.Helper()
	path := filepath.Join(kubeconfigDir, "admin")
	if asUser != "" {
		path = filepath.Join(t.TempDir(), "kubeconfig")
	} else if _, err := os.Stat(path); err == nil {
		return path
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken,
		Impersonate: asUser, ImpersonateGroups: groups,
	}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "user"}
	kc.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}
