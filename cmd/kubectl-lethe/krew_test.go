package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// krewManifest is the part of a krew Plugin manifest this test checks.
type krewManifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		ShortDescription string `json:"shortDescription"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

var (
	sha256Hex   = regexp.MustCompile(`^[0-9a-f]{64}$`)
	placeholder = regexp.MustCompile(`^FILL-AT-RELEASE-`)
)

// The manifest installs the binary `kubectl lethe` runs, for each platform
// from that version's release, and its checksums are either real ones or
// placeholders that say so, never something that looks like a checksum.
func TestKrewManifest(t *testing.T) {
	data, err := os.ReadFile("krew.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m krewManifest
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("krew.yaml: %v", err)
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "lethe" {
		t.Fatalf("not the lethe krew Plugin: %s %s %s", m.APIVersion, m.Kind, m.Metadata.Name)
	}
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(m.Spec.Version) || len(m.Spec.ShortDescription) > 50 {
		t.Errorf("version %q, shortDescription %q (krew wants vX.Y.Z and under 50 characters)", m.Spec.Version, m.Spec.ShortDescription)
	}
	seen := map[string]bool{}
	for _, p := range m.Spec.Platforms {
		osName, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		key := osName + "/" + arch
		if osName == "" || arch == "" || seen[key] {
			t.Errorf("platform %q: missing or repeated os/arch", key)
		}
		seen[key] = true
		wantBin := "kubectl-lethe"
		if osName == "windows" {
			wantBin += ".exe"
		}
		if p.Bin != wantBin {
			t.Errorf("%s: bin %q, want %q", key, p.Bin, wantBin)
		}
		if !strings.Contains(p.URI, "/"+m.Spec.Version+"/") || !strings.HasSuffix(p.URI, "kubectl-lethe_"+osName+"_"+arch+".tar.gz") {
			t.Errorf("%s: uri %q is not this version's archive for the platform", key, p.URI)
		}
		switch {
		case sha256Hex.MatchString(p.SHA256):
		case placeholder.MatchString(p.SHA256) && strings.Contains(p.SHA256, osName+"_"+arch):
		default:
			t.Errorf("%s: sha256 %q is neither a SHA-256 nor a FILL-AT-RELEASE placeholder naming its archive", key, p.SHA256)
		}
	}
	if !seen["linux/amd64"] {
		t.Error("no linux/amd64 platform")
	}
}
