//go:build tools

// Package tools pins the commands this module builds: kube-apiserver and
// kubectl come straight from k8s.io/kubernetes; etcd has a tiny main in ./etcd.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
