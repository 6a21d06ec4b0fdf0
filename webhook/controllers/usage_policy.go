package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
)

// RepositoryAllows applies repo's usage policy to namespace ns: Same (the default) allows
// only the Repository's own namespace, All every namespace, Selector the namespaces whose
// labels match. The controller grants runners access to a Repository in another namespace
// only when this holds, whatever the admission webhook let through.
func RepositoryAllows(ctx context.Context, c client.Reader, repo *v1alpha1.Repository, ns string) (bool, error) {
	if repo.Namespace == ns {
		return true, nil
	}
	from := v1alpha1.NamespacesFromSame
	var sel *metav1.LabelSelector
	if p := repo.Spec.UsagePolicy; p != nil && p.AllowedNamespaces.From != "" {
		from, sel = p.AllowedNamespaces.From, p.AllowedNamespaces.Selector
	}
	switch from {
	case v1alpha1.NamespacesFromAll:
		return true, nil
	case v1alpha1.NamespacesFromSelector:
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil || sel == nil {
			return false, nil // an invalid or missing selector allows nothing
		}
		var n corev1.Namespace
		if err := c.Get(ctx, types.NamespacedName{Name: ns}, &n); err != nil {
			return false, fmt.Errorf("get namespace %s: %w", ns, err)
		}
		return s.Matches(labels.Set(n.Labels)), nil
	}
	return false, nil
}
