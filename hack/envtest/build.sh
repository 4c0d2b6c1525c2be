#!/usr/bin/env bash
# Builds the envtest control plane (etcd, kube-apiserver, kubectl) from their Go
# modules, because release binaries cannot be downloaded here. Output goes where
# setup-envtest would put it, so other tools find it too. Reused when present.
set -euo pipefail
K8S_VERSION="${K8S_VERSION:-1.37.2}"
DEST="${ENVTEST_ASSETS_DIR:-$HOME/.local/share/kubebuilder-envtest/k8s/${K8S_VERSION}-linux-amd64}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -x "$DEST/kube-apiserver" && -x "$DEST/etcd" && -x "$DEST/kubectl" ]]; then
  echo "$DEST"
  exit 0
fi
mkdir -p "$DEST"
tmp="$(mktemp -d "$DEST/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cd "$HERE"
echo "building envtest control plane v${K8S_VERSION} into $DEST (cold build takes a few minutes)" >&2
export CGO_ENABLED=0
# Stamp the version so the API server reports it (and kubectl version skew checks pass).
vpkg=k8s.io/component-base/version
ld="-s -w -X $vpkg.gitVersion=v${K8S_VERSION} -X $vpkg.gitMajor=${K8S_VERSION%%.*} -X $vpkg.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2) -X $vpkg.gitTreeState=clean"
go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" ./etcd
go build -trimpath -ldflags "$ld" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags "$ld" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl
# Move into place last, so an interrupted build is never mistaken for a finished one.
mv "$tmp/etcd" "$tmp/kubectl" "$DEST/"
mv "$tmp/kube-apiserver" "$DEST/"
echo "$DEST"
