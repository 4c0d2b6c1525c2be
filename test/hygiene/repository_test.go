// Package hygiene_test checks the repository itself: no large or binary file
// is tracked, build outputs are ignored, the kubebuilder PROJECT file
// describes the real layout, and the connection strings documented in
// docs/operations.md are accepted by the engines.
package hygiene_test

import (
	"bufio"
	"bytes"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
)

// maxTrackedSize is the largest file git may track. The largest legitimate
// files (generated CRDs, go.sum) are tens of kilobytes.
const maxTrackedSize = 2 << 20

func repoPath(parts ...string) string {
	_, file, _, _ := goruntime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", ".."}, parts...)...)
}

func git(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", repoPath()}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out
}

// binaryMagic are the first bytes of build outputs and archives.
var binaryMagic = []struct{ what, magic string }{
	{"an ELF executable or object", "\x7fELF"},
	{"a Mach-O executable", "\xcf\xfa\xed\xfe"},
	{"a Mach-O executable", "\xce\xfa\xed\xfe"},
	{"a universal Mach-O executable", "\xca\xfe\xba\xbe"},
	{"a Windows executable", "MZ"},
	{"a Go archive", "!<arch>\n"},
	{"a gzip archive (a packaged chart?)", "\x1f\x8b"},
	{"a zip archive", "PK\x03\x04"},
	{"a WebAssembly module", "\x00asm"},
}

// trackedBlob is one file of git's index: what would be committed.
type trackedBlob struct {
	path string
	size int64
	head []byte
}

func trackedBlobs(t *testing.T) []trackedBlob {
	t.Helper()
	var blobs []trackedBlob
	var hashes bytes.Buffer
	for _, entry := range bytes.Split(git(t, nil, "ls-files", "-z", "--stage"), []byte{0}) {
		if len(entry) == 0 {
			continue
		}
		meta, path, ok := bytes.Cut(entry, []byte{'\t'})
		fields := strings.Fields(string(meta))
		if !ok || len(fields) != 3 {
			t.Fatalf("unexpected git ls-files entry %q", entry)
		}
		if fields[0] == "160000" { // a submodule: no blob
			continue
		}
		blobs = append(blobs, trackedBlob{path: string(path)})
		hashes.WriteString(fields[1] + "\n")
	}
	// One git process reads every blob: "<hash> blob <size>\n<content>\n".
	out := bufio.NewReader(bytes.NewReader(git(t, hashes.Bytes(), "cat-file", "--batch")))
	for i := range blobs {
		header, err := out.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(header)
		if len(f) != 3 || f[1] != "blob" {
			t.Fatalf("git cat-file: unexpected %q for %s", header, blobs[i].path)
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		content := make([]byte, size+1)
		if _, err := io.ReadFull(out, content); err != nil {
			t.Fatal(err)
		}
		blobs[i].size = size
		blobs[i].head = content[:min(size, 16)]
	}
	return blobs
}

// What git tracks (its index: what the next commit holds) has no file over
// maxTrackedSize and no executable or archive of any size: build outputs
// belong in .gitignore, not in history (a 58 MB `lethe` binary was committed twice).
func TestNoLargeOrBinaryFileIsTracked(t *testing.T) {
	blobs := trackedBlobs(t)
	if len(blobs) < 100 {
		t.Fatalf("git tracks %d files; the listing is wrong", len(blobs))
	}
	for _, b := range blobs {
		if b.size > maxTrackedSize {
			t.Errorf("%s is tracked and %d bytes (over %d): remove it from the index (git rm --cached) and ignore it", b.path, b.size, maxTrackedSize)
		}
		if what := binaryKind(b.head); what != "" {
			t.Errorf("%s is tracked and is %s: remove it from the index (git rm --cached) and ignore it", b.path, what)
		}
	}
}

func binaryKind(head []byte) string {
	for _, m := range binaryMagic {
		if bytes.HasPrefix(head, []byte(m.magic)) {
			return m.what
		}
	}
	return ""
}

// The magic numbers above recognise a real Go binary: the test binary itself.
func TestBinaryDetectionRecognisesAGoBinary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 16)
	if _, err := io.ReadFull(f, head); err != nil {
		t.Fatal(err)
	}
	if binaryKind(head) == "" {
		t.Errorf("the test binary (%x...) is not recognised as a binary", head)
	}
	if binaryKind([]byte("package main\n")) != "" || binaryKind([]byte("#!/usr/bin/env bash")) != "" {
		t.Error("source text is taken for a binary")
	}
}

// What builds write inside the repository is ignored by git: `go build` of
// every command of the module (at the root it writes <command>), the
// Makefile's bin/ and dist/, coverage and test binaries, the dev cluster's
// state and packaged charts.
func TestBuildOutputsAreIgnored(t *testing.T) {
	outputs := []string{
		"bin/manager", "bin/controller-gen", "bin/bench/result.json",
		"dist/install.yaml", "cover.out", "controllers/controllers.test",
		".dev-cluster/kubeconfig", "lethe-0.1.0.tgz", "charts/lethe-0.1.0.tgz",
	}
	for _, cmd := range mainPackages(t) {
		outputs = append(outputs, cmd)
	}
	for _, p := range outputs {
		cmd := exec.Command("git", "-C", repoPath(), "check-ignore", "--no-index", "-q", p)
		if err := cmd.Run(); err != nil {
			t.Errorf("%s, a build output, is not ignored by .gitignore", p)
		}
	}
	// The check can fail: sources are not ignored.
	for _, p := range []string{"main.go", "charts/lethe/values.yaml", "PROJECT"} {
		if err := exec.Command("git", "-C", repoPath(), "check-ignore", "--no-index", "-q", p).Run(); err == nil {
			t.Errorf("%s is ignored", p)
		}
	}
}

// mainPackages returns the name `go build` gives each command of the main
// module when run at the root: the module's last element for the root
// package, the directory's name otherwise. Nested modules (hack/envtest) are
// not built from the root.
func mainPackages(t *testing.T) []string {
	t.Helper()
	mod := string(readFile(t, "go.mod"))
	first, _, _ := strings.Cut(mod, "\n")
	module := strings.TrimSpace(strings.TrimPrefix(first, "module"))
	var out []string
	err := filepath.WalkDir(repoPath(), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		name := d.Name()
		if path != repoPath() && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin" || name == "dist") {
			return filepath.SkipDir
		}
		if path != repoPath() {
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		if isMain(t, path) {
			if path == repoPath() {
				out = append(out, module[strings.LastIndex(module, "/")+1:])
			} else {
				out = append(out, name)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no command found in the module")
	}
	return out
}

func isMain(t *testing.T, dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(src), "\n") {
			if strings.HasPrefix(line, "package ") {
				return strings.TrimSpace(strings.TrimPrefix(line, "package ")) == "main"
			}
		}
	}
	return false
}

func readFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(repoPath(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
