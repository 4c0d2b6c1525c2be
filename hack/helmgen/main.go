// Command helmgen writes the parts of the Helm chart (charts/lethe) that come
// from config/ — CRDs, RBAC rules, the namespace's Pod Security labels, the
// alerts and the Argo CD health checks, into templates/_config.tpl — and the
// values table of the chart's README, from the "# --" comments of values.yaml.
//
//	go run ./hack/helmgen          # writes them (make helm)
//	go run ./hack/helmgen -check   # fails when they are stale
//
// Run it from the repository root, after make manifests.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/lethe-dev/lethe/hack/helmgen/chartgen"
)

func main() {
	root := flag.String("root", ".", "the repository's root directory")
	check := flag.Bool("check", false, "do not write; fail when a generated file differs from what would be written")
	flag.Parse()

	files, err := chartgen.Generate(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helmgen:", err)
		os.Exit(1)
	}
	if *check {
		if stale := chartgen.Stale(*root, files); len(stale) > 0 {
			sort.Strings(stale)
			fmt.Fprintf(os.Stderr, "helmgen: not up to date, run make helm: %v\n", stale)
			os.Exit(1)
		}
		return
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := os.WriteFile(filepath.Join(*root, p), files[p], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "helmgen:", err)
			os.Exit(1)
		}
		fmt.Println(p)
	}
}
