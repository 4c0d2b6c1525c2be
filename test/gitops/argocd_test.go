package gitops_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/internal/testenv"
	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite config/argocd/argocd-cm.yaml from config/argocd/health/*.lua")

// Kinds with an Argo CD health check, in the order of argocd-cm.yaml.
var healthKinds = []string{"DataStore", "DataSubjectRequest", "RetentionPolicy", "LegalHold"}

const argoGroup = "privacy.lethe.dev"

func healthScript(t *testing.T, kind string) string {
	t.Helper()
	b, err := os.ReadFile(testenv.RepoPath("config", "argocd", "health", kind+".lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// argoHealth runs a health script the way Argo CD does (util/lua in argo-cd):
// a fresh state with only the package, base and table libraries, the live
// object decoded into the global obj, and the returned table's status and
// message read back. A status Argo CD does not know is an error here (Argo CD
// would show Unknown).
func argoHealth(t *testing.T, kind string, u *unstructured.Unstructured) (status, message string) {
	t.Helper()
	L := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer L.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := L.CallByParam(lua.P{Fn: L.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			t.Fatal(err)
		}
	}
	L.SetGlobal("obj", luaValue(L, u.Object))
	if err := L.DoString(healthScript(t, kind)); err != nil {
		t.Fatalf("%s.lua: %v", kind, err)
	}
	ret, ok := L.Get(-1).(*lua.LTable)
	if !ok {
		t.Fatalf("%s.lua returned %s, want a table", kind, L.Get(-1).Type())
	}
	st, ok1 := ret.RawGetString("status").(lua.LString)
	msg, ok2 := ret.RawGetString("message").(lua.LString)
	if !ok1 || !ok2 {
		t.Fatalf("%s.lua returned status %v and message %v, want two strings", kind, ret.RawGetString("status"), ret.RawGetString("message"))
	}
	switch string(st) {
	case "Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown":
	default:
		t.Fatalf("%s.lua returned status %q, which Argo CD does not know", kind, st)
	}
	return string(st), string(msg)
}

// luaValue converts a decoded JSON value as Argo CD's decodeValue does.
func luaValue(L *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case []any:
		arr := L.CreateTable(len(v), 0)
		for _, item := range v {
			arr.Append(luaValue(L, item))
		}
		return arr
	case map[string]any:
		tbl := L.CreateTable(0, len(v))
		for key, item := range v {
			tbl.RawSetString(key, luaValue(L, item))
		}
		return tbl
	}
	return lua.LNil
}

func argoKey(kind string) string {
	return fmt.Sprintf("resource.customizations.health.%s_%s", argoGroup, kind)
}

func renderArgoCDConfigMap(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(`# Argo CD health checks for Lethe's kinds: merge into the argocd-cm ConfigMap,
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file config/argocd/argocd-cm.yaml
# or add the keys to your own argocd-cm (Helm: configs.cm). Generated from
# config/argocd/health/*.lua by: go test ./test/gitops -run TestArgoCDConfigMap -update
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
`)
	for _, kind := range healthKinds {
		fmt.Fprintf(&b, "  %s: |\n", argoKey(kind))
		for _, line := range strings.Split(strings.TrimRight(healthScript(t, kind), "\n"), "\n") {
			if line == "" {
				b.WriteString("\n")
				continue
			}
			b.WriteString("    " + line + "\n")
		}
	}
	return b.String()
}

// The argocd-cm snippet carries exactly the tested Lua files.
func TestArgoCDConfigMapCarriesTheTestedScripts(t *testing.T) {
	path := testenv.RepoPath("config", "argocd", "argocd-cm.yaml")
	if *update {
		if err := os.WriteFile(path, []byte(renderArgoCDConfigMap(t)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{}
	if err := yaml.UnmarshalStrict(data, cm); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if cm.Name != "argocd-cm" {
		t.Errorf("ConfigMap name %q, want argocd-cm", cm.Name)
	}
	if len(cm.Data) != len(healthKinds) {
		t.Errorf("%d keys in %s, want %d (one per kind)", len(cm.Data), path, len(healthKinds))
	}
	files, _ := filepath.Glob(testenv.RepoPath("config", "argocd", "health", "*.lua"))
	if len(files) != len(healthKinds) {
		t.Errorf("%d scripts in config/argocd/health, want %d", len(files), len(healthKinds))
	}
	for _, kind := range healthKinds {
		if got, want := cm.Data[argoKey(kind)], healthScript(t, kind); got != want {
			t.Errorf("%s differs from config/argocd/health/%s.lua; run: go test ./test/gitops -run TestArgoCDConfigMap -update", argoKey(kind), kind)
		}
	}
}
