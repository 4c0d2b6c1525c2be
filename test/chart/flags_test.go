package chart_test

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/lethe-dev/lethe/internal/testenv"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// The release the "every value set" tests install.
const (
	everyRelease   = "privacy"
	everyNamespace = "privacy-ops"
	everyDigest    = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// everything sets every value of the chart to something other than its default.
func everything() map[string]any {
	return map[string]any{
		"image":                  map[string]any{"repository": "registry.example.com/lethe/manager", "tag": "v9.9.9", "digest": everyDigest, "pullPolicy": "Always"},
		"imagePullSecrets":       []any{map[string]any{"name": "regcred"}},
		"replicaCount":           2,
		"crds":                   map[string]any{"install": true, "keep": false},
		"rbac":                   map[string]any{"create": true, "userRoles": false},
		"serviceAccount":         map[string]any{"create": true, "name": "lethe-sa", "annotations": map[string]any{"example.com/role": "privacy"}},
		"watchNamespaces":        []any{"team-a", "team-b"},
		"leaderElection":         map[string]any{"enabled": true},
		"digestKeySecret":        "privacy-digest-key",
		"forgetKeySecret":        "privacy-forget-key",
		"deadlines":              map[string]any{"erasure": "12h", "other": "168h"},
		"workers":                4,
		"discardIdentitiesAfter": "1h",
		"maxExportBytes":         4194304,
		"admission":              map[string]any{"enabled": true, "allowInlineIdentities": true},
		"egress": map[string]any{
			"allow":      []any{"10.20.0.0/16", "db.internal.example.com"},
			"deny":       []any{"10.20.99.0/24", "*.blocked.example.com"},
			"requireTLS": true,
		},
		"logging": map[string]any{
			"level": "debug", "encoder": "console", "development": true, "stacktraceLevel": "panic", "timeEncoding": "rfc3339",
		},
		"extraArgs":   []any{"--zap-log-level=info"},
		"extraEnv":    []any{map[string]any{"name": "GOMEMLIMIT", "value": "200MiB"}},
		"healthProbe": map[string]any{"port": 9081},
		"metrics": map[string]any{"enabled": true, "port": 9080, "service": map[string]any{
			"type": "ClusterIP", "port": 9090, "annotations": map[string]any{"example.com/scrape": "true"},
		}},
		"serviceMonitor": map[string]any{
			"enabled": true, "interval": "1m", "scrapeTimeout": "10s", "labels": map[string]any{"release": "kube-prometheus-stack"},
			"relabelings":       []any{map[string]any{"action": "replace", "targetLabel": "cluster", "replacement": "eu-1"}},
			"metricRelabelings": []any{map[string]any{"action": "drop", "sourceLabels": []any{"__name__"}, "regex": "go_.*"}},
		},
		"prometheusRule": map[string]any{"enabled": true, "labels": map[string]any{"release": "kube-prometheus-stack"}},
		"argocd":         map[string]any{"healthChecks": map[string]any{"enabled": true, "namespace": ""}},
		"namespace":      map[string]any{"create": true},
		"podAnnotations": map[string]any{"example.com/team": "privacy"},
		"podLabels":      map[string]any{"example.com/tier": "control"},
		"podSecurityContext": map[string]any{
			"runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
			"seccompProfile": map[string]any{"type": "RuntimeDefault"},
		},
		"securityContext": map[string]any{
			"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
			"capabilities": map[string]any{"drop": []any{"ALL"}},
		},
		"resources":    map[string]any{"requests": map[string]any{"cpu": "50m", "memory": "128Mi"}, "limits": map[string]any{"memory": "512Mi"}},
		"nodeSelector": map[string]any{"kubernetes.io/os": "linux"},
		"tolerations":  []any{map[string]any{"key": "dedicated", "operator": "Equal", "value": "control", "effect": "NoSchedule"}},
		"affinity": map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
			"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{map[string]any{"key": "kubernetes.io/arch", "operator": "In", "values": []any{"amd64", "arm64"}}}}},
		}}},
		"topologySpreadConstraints": []any{map[string]any{
			"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
			"labelSelector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "lethe"}},
		}},
		"priorityClassName":             "privacy-critical",
		"terminationGracePeriodSeconds": 60,
	}
}

// What each manager flag becomes with everything(): the value that sets it and
// the argument it renders. A flag of main.go missing here fails
// TestEveryManagerFlagIsAValue.
var flagValues = map[string]struct{ value, arg string }{
	"metrics-bind-address":      {"metrics.enabled, metrics.port", "--metrics-bind-address=:9080"},
	"health-probe-bind-address": {"healthProbe.port", "--health-probe-bind-address=:9081"},
	"leader-elect":              {"leaderElection.enabled", "--leader-elect"},
	"erasure-deadline":          {"deadlines.erasure", "--erasure-deadline=12h"},
	"default-deadline":          {"deadlines.other", "--default-deadline=168h"},
	"operator-namespace":        {"(always the release namespace)", "--operator-namespace=$(POD_NAMESPACE)"},
	"digest-key-secret":         {"digestKeySecret", "--digest-key-secret=privacy-digest-key"},
	"forget-key-secret":         {"forgetKeySecret", "--forget-key-secret=privacy-forget-key"},
	"max-concurrent-reconciles": {"workers", "--max-concurrent-reconciles=4"},
	"discard-identities-after":  {"discardIdentitiesAfter", "--discard-identities-after=1h"},
	"max-export-bytes":          {"maxExportBytes", "--max-export-bytes=4194304"},
	"egress-allow":              {"egress.allow", "--egress-allow=10.20.0.0/16 --egress-allow=db.internal.example.com"},
	"egress-deny":               {"egress.deny", "--egress-deny=10.20.99.0/24 --egress-deny=*.blocked.example.com"},
	"require-tls":               {"egress.requireTLS", "--require-tls"},
	"watch-namespaces":          {"watchNamespaces", "--watch-namespaces=team-a,team-b"},
	"zap-log-level":             {"logging.level", "--zap-log-level=debug"},
	"zap-encoder":               {"logging.encoder", "--zap-encoder=console"},
	"zap-devel":                 {"logging.development", "--zap-devel"},
	"zap-stacktrace-level":      {"logging.stacktraceLevel", "--zap-stacktrace-level=panic"},
	"zap-time-encoding":         {"logging.timeEncoding", "--zap-time-encoding=rfc3339"},
}

// Flags that are deliberately not values, and why.
var notValues = map[string]string{
	"kubeconfig": "controller-runtime's; in a pod the manager uses its ServiceAccount",
}

// managerFlags reads the flags the manager defines: the flag.XxxVar / flag.Xxx
// calls of the root package, and controller-runtime's zap flags when it binds them.
func managerFlags(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(testenv.RepoPath("*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "flag" && sel.Sel.Name != "Parse" {
				i := 0
				if strings.HasSuffix(sel.Sel.Name, "Var") {
					i = 1
				}
				if i < len(call.Args) {
					if lit, ok := call.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						name, _ := strconv.Unquote(lit.Value)
						names = append(names, name)
					}
				}
			}
			if sel.Sel.Name == "BindFlags" { // zap.Options.BindFlags(flag.CommandLine)
				fs := flag.NewFlagSet("zap", flag.ContinueOnError)
				(&zap.Options{}).BindFlags(fs)
				fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
			}
			return true
		})
	}
	if len(names) < 10 {
		t.Fatalf("found only %d manager flags in %s: the parser no longer sees them", len(names), testenv.RepoPath("*.go"))
	}
	names = append(names, "kubeconfig") // registered by controller-runtime's client/config package
	slices.Sort(names)
	return slices.Compact(names)
}

// Every flag of the manager is a value of the chart, renders the argument
// expected, and is named in the values table.
func TestEveryManagerFlagIsAValue(t *testing.T) {
	flags := managerFlags(t)
	readme := string(mustRead(t, testenv.RepoPath("charts", "lethe", "README.md")))
	args := strings.Join(deployment(t, mustRender(t, everyRelease, everyNamespace, everything())).Spec.Template.Spec.Containers[0].Args, " ")
	for _, name := range flags {
		if why, ok := notValues[name]; ok {
			t.Logf("--%s is not a value: %s", name, why)
			continue
		}
		fv, ok := flagValues[name]
		if !ok {
			t.Errorf("the manager's --%s flag is not a value of the chart (add one, and a line to flagValues)", name)
			continue
		}
		for _, want := range strings.Fields(fv.arg) {
			if !slices.Contains(strings.Fields(args), want) {
				t.Errorf("%s: the Deployment's arguments lack %s:\n%s", fv.value, want, args)
			}
		}
		if name != "operator-namespace" && !strings.Contains(readme, "`--"+name+"`") {
			t.Errorf("the values table does not name --%s", name)
		}
	}
	for name := range flagValues {
		if !slices.Contains(flags, name) {
			t.Errorf("flagValues names --%s, which the manager no longer defines", name)
		}
	}
}
