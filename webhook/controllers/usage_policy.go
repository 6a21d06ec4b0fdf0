package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
)

// RepositoryAllows applies repo's usage policy to namespace ns (v1alpha1's AllowsNamespace),
// reading the namespace's labels when the policy is a selector.
func RepositoryAllows(ctx context.Context, c client.Reader, repo *v1alpha1.Repository, ns string) (bool, error) {
	return repo.AllowsNamespace(ns, func() (map[string]string, error) {
		var n corev1.Namespace
		if err := c.Get(ctx, types.NamespacedName{Name: ns}, &n); err != nil {
			return nil, fmt.Errorf("get namespace %s: %w", ns, err)
		}
		return n.Labels, nil
	})
}
