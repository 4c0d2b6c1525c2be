package hygiene_test

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	privacyv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// project is the part of kubebuilder's PROJECT file (version 3) Lethe fills in.
type project struct {
	Version     string   `json:"version"`
	Domain      string   `json:"domain"`
	Layout      []string `json:"layout"`
	ProjectName string   `json:"projectName"`
	Repo        string   `json:"repo"`
	CLIVersion  string   `json:"cliVersion,omitempty"`
	Resources   []struct {
		API *struct {
			CRDVersion string `json:"crdVersion"`
			Namespaced bool   `json:"namespaced"`
		} `json:"api"`
		Controller bool   `json:"controller"`
		Domain     string `json:"domain"`
		Group      string `json:"group"`
		Kind       string `json:"kind"`
		Path       string `json:"path"`
		Version    string `json:"version"`
	} `json:"resources"`
}

// PROJECT tells the kubebuilder CLI (kubebuilder edit, create api/webhook) and
// contributors' tools the layout: go.kubebuilder.io/v4, the module, and one
// resource per kind of api/v1alpha1, namespaced as its CRD is, each with its
// controller.
func TestProjectFileDescribesTheLayout(t *testing.T) {
	var p project
	if err := yaml.UnmarshalStrict(readFile(t, "PROJECT"), &p); err != nil {
		t.Fatalf("PROJECT: %v", err)
	}
	first, _, _ := strings.Cut(string(readFile(t, "go.mod")), "\n")
	module := strings.TrimSpace(strings.TrimPrefix(first, "module"))
	gv := privacyv1.GroupVersion
	group, domain, _ := strings.Cut(gv.Group, ".")

	if p.Version != "3" || !slices.Equal(p.Layout, []string{"go.kubebuilder.io/v4"}) {
		t.Errorf("PROJECT version %q layout %v, want 3 and [go.kubebuilder.io/v4]", p.Version, p.Layout)
	}
	if p.Repo != module {
		t.Errorf("PROJECT repo %q, go.mod's module is %q", p.Repo, module)
	}
	if p.Domain != domain || p.ProjectName != "lethe" {
		t.Errorf("PROJECT domain %q projectName %q, want %q and lethe", p.Domain, p.ProjectName, domain)
	}

	// The kinds api/v1alpha1 registers, and the scope of their CRDs.
	s := runtime.NewScheme()
	if err := privacyv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for kind, typ := range s.KnownTypes(gv) {
		// The group's own kinds, not the options types every group version gets.
		if typ.PkgPath() == module+"/api/"+gv.Version && !strings.HasSuffix(kind, "List") {
			kinds = append(kinds, kind)
		}
	}
	slices.Sort(kinds)
	if len(kinds) != 4 {
		t.Errorf("api/v1alpha1 registers %v; the issue expected 4 kinds", kinds)
	}
	scope := crdScopes(t)

	var listed []string
	for _, r := range p.Resources {
		listed = append(listed, r.Kind)
		if r.Group != group || r.Domain != domain || r.Version != gv.Version {
			t.Errorf("PROJECT %s: %s.%s/%s, want %s/%s", r.Kind, r.Group, r.Domain, r.Version, gv.Group, gv.Version)
		}
		if want := module + "/api/" + gv.Version; r.Path != want {
			t.Errorf("PROJECT %s: path %q, want %q", r.Kind, r.Path, want)
		}
		if r.API == nil || r.API.CRDVersion != "v1" {
			t.Errorf("PROJECT %s: no api with crdVersion v1", r.Kind)
		} else if sc, ok := scope[r.Kind]; !ok {
			t.Errorf("PROJECT %s: config/crd/bases has no CRD of that kind", r.Kind)
		} else if r.API.Namespaced != (sc == apiextensionsv1.NamespaceScoped) {
			t.Errorf("PROJECT %s: namespaced %v, its CRD is %s", r.Kind, r.API.Namespaced, sc)
		}
		if !r.Controller {
			t.Errorf("PROJECT %s: controller false, but controllers/ reconciles it", r.Kind)
		}
	}
	slices.Sort(listed)
	if !slices.Equal(listed, kinds) {
		t.Errorf("PROJECT lists %v, api/v1alpha1 registers %v", listed, kinds)
	}
}

func crdScopes(t *testing.T) map[string]apiextensionsv1.ResourceScope {
	t.Helper()
	files, err := filepath.Glob(repoPath("config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	out := map[string]apiextensionsv1.ResourceScope{}
	for _, f := range files {
		rel, _ := filepath.Rel(repoPath(), f)
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(readFile(t, rel), &crd); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		out[crd.Spec.Names.Kind] = crd.Spec.Scope
	}
	return out
}

// The Makefile keeps kubebuilder's target names, which its docs and
// contributors' muscle memory use.
func TestMakefileKeepsKubebuilderTargets(t *testing.T) {
	makefile := string(readFile(t, "Makefile"))
	for _, target := range []string{
		"help", "manifests", "generate", "fmt", "vet", "test", "build", "run",
		"docker-build", "install", "uninstall", "deploy", "undeploy", "build-installer",
		"controller-gen", "envtest", "helm",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).MatchString(makefile) {
			t.Errorf("the Makefile has no %s target", target)
		}
	}
}
