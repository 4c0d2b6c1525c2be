// Package v1alpha1 contains the API of Lethe: DataStore, DataSubjectRequest,
// RetentionPolicy and LegalHold in the privacy.lethe.dev group.
// +kubebuilder:object:generate=true
// +groupName=privacy.lethe.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every Lethe kind.
	GroupVersion = schema.GroupVersion{Group: "privacy.lethe.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the Lethe kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the Lethe kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
