// Package gitops holds the tests of Lethe's place in the Kubernetes ecosystem,
// all against a real control plane (envtest): kstatus and the Argo CD health
// checks of config/argocd on real objects in every state, the metrics the
// controllers record, and the kustomize installation of config/default, which a
// real API server must accept and whose RBAC must be enough, and no more than
// enough, for the manager binary.
package gitops
