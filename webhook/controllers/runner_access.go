package controllers

import (
	"context"
	"fmt"
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/webhook/jobs"
)

// ensureRunnerAccess keeps the runner's ServiceAccount, Role and RoleBinding in namespace ns
// in step with the objects there: the Role names exactly the Secrets that the namespace's
// BackupConfigurations and RestoreSessions (and their Repositories and AppBindings) refer to.
func ensureRunnerAccess(ctx context.Context, c client.Client, ns string) error {
	secrets, err := runnerSecrets(ctx, c, ns)
	if err != nil {
		return err
	}
	sa := jobs.RunnerServiceAccount(ns)
	if _, err := controllerutil.CreateOrUpdate(ctx, c, sa, func() error { return nil }); err != nil {
		return fmt.Errorf("ensure runner service account in %s: %w", ns, err)
	}
	want := jobs.RunnerRole(ns, secrets)
	role := &rbacv1.Role{ObjectMeta: want.ObjectMeta}
	if _, err := controllerutil.CreateOrUpdate(ctx, c, role, func() error {
		role.Labels, role.Rules = want.Labels, want.Rules
		return nil
	}); err != nil {
		return fmt.Errorf("ensure runner role in %s: %w", ns, err)
	}
	wantRB := jobs.RunnerRoleBinding(ns)
	rb := &rbacv1.RoleBinding{ObjectMeta: wantRB.ObjectMeta}
	if _, err := controllerutil.CreateOrUpdate(ctx, c, rb, func() error {
		rb.Labels, rb.Subjects = wantRB.Labels, wantRB.Subjects
		if rb.RoleRef.Name == "" { // roleRef cannot change once set
			rb.RoleRef = wantRB.RoleRef
		}
		return nil
	}); err != nil {
		return fmt.Errorf("ensure runner role binding in %s: %w", ns, err)
	}
	return nil
}

// runnerSecrets lists the Secrets the runner may read in ns, sorted.
func runnerSecrets(ctx context.Context, c client.Client, ns string) ([]string, error) {
	set := map[string]bool{}
	add := func(name string) {
		if name != "" {
			set[name] = true
		}
	}
	repos := map[string]bool{}
	addTarget := func(t *v1alpha1.Target) error {
		if r := t.Redis; r != nil {
			if r.AuthSecret != nil {
				add(r.AuthSecret.Name)
			}
			if r.TLS != nil {
				if r.TLS.CASecret != nil {
					add(r.TLS.CASecret.Name)
				}
				if r.TLS.ClientCertSecret != nil {
					add(r.TLS.ClientCertSecret.Name)
				}
			}
		}
		if t.Ref != nil {
			ab := &unstructured.Unstructured{}
			ab.SetAPIVersion(v1alpha1.AppBindingAPIVersion)
			ab.SetKind(v1alpha1.AppBindingKind)
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: t.Ref.Name}, ab); err == nil {
				s, _, _ := unstructured.NestedString(ab.Object, "spec", "secret", "name")
				add(s)
				s, _, _ = unstructured.NestedString(ab.Object, "spec", "tlsSecret", "name")
				add(s)
			}
		}
		return nil
	}
	var bcs v1alpha1.BackupConfigurationList
	if err := c.List(ctx, &bcs, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list backupconfigurations in %s: %w", ns, err)
	}
	for i := range bcs.Items {
		b := &bcs.Items[i]
		_ = addTarget(&b.Spec.Target)
		if b.Spec.Repository.Namespace == "" || b.Spec.Repository.Namespace == ns {
			repos[b.Spec.Repository.Name] = true
		}
	}
	var rss v1alpha1.RestoreSessionList
	if err := c.List(ctx, &rss, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list restoresessions in %s: %w", ns, err)
	}
	for i := range rss.Items {
		r := &rss.Items[i]
		_ = addTarget(&r.Spec.Target)
		if r.Spec.Repository.Namespace == "" || r.Spec.Repository.Namespace == ns {
			repos[r.Spec.Repository.Name] = true
		}
	}
	for name := range repos {
		var repo v1alpha1.Repository
		switch err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &repo); {
		case err == nil:
			add(repo.Spec.Backend.StorageSecretName)
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("get repository %s/%s: %w", ns, name, err)
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}
