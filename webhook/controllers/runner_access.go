package controllers

import (
	"context"
	"fmt"
	"sort"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/webhook/jobs"
)

// ensureRunnerAccess keeps the runner's ServiceAccount, Role and RoleBinding in namespace ns
// in step with the objects there: the Role names exactly the Secrets that the namespace's
// BackupConfigurations and RestoreSessions (and their Repositories and AppBindings) refer to,
// and the RoleBinding binds it to stash-runner and to every service account their
// runtimeSettings name (the controller does not create those: they are the user's, often
// bound to a cloud role). A Repository in another namespace whose usage policy allows ns gets
// a Role there that names only that Repository and its storage Secret (see ensureSharedAccess).
func ensureRunnerAccess(ctx context.Context, c client.Client, ns string) error {
	need, err := runnerNeeds(ctx, c, ns)
	if err != nil {
		return err
	}
	sa := jobs.RunnerServiceAccount(ns)
	if _, err := controllerutil.CreateOrUpdate(ctx, c, sa, func() error { return nil }); err != nil {
		return fmt.Errorf("ensure runner service account in %s: %w", ns, err)
	}
	role := jobs.RunnerRole(ns, need.secrets)
	role.Rules = append(role.Rules, jobs.HookExecRules(need.hookPods)...)
	if err := ensureRole(ctx, c, role); err != nil {
		return err
	}
	if err := ensureRoleBinding(ctx, c, jobs.RunnerRoleBinding(ns, need.accounts...)); err != nil {
		return err
	}
	return ensureSharedAccess(ctx, c, ns, need)
}

func ensureRole(ctx context.Context, c client.Client, want *rbacv1.Role) error {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: want.Name, Namespace: want.Namespace}}
	if _, err := controllerutil.CreateOrUpdate(ctx, c, role, func() error {
		role.Labels, role.Rules = want.Labels, want.Rules
		return nil
	}); err != nil {
		return fmt.Errorf("ensure role %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

func ensureRoleBinding(ctx context.Context, c client.Client, want *rbacv1.RoleBinding) error {
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: want.Name, Namespace: want.Namespace}}
	if _, err := controllerutil.CreateOrUpdate(ctx, c, rb, func() error {
		rb.Labels, rb.Subjects = want.Labels, want.Subjects
		if rb.RoleRef.Name == "" { // roleRef cannot change once set
			rb.RoleRef = want.RoleRef
		}
		return nil
	}); err != nil {
		return fmt.Errorf("ensure role binding %s/%s: %w", want.Namespace, want.Name, err)
	}
	return nil
}

// ensureSharedAccess gives the runners of ns a Role in each other namespace whose Repositories
// they may use, and empties the Roles of namespaces they no longer use (the controller may
// update Roles but not delete them). A Repository whose policy does not allow ns is never
// granted: the admission webhook denies such a reference, and a reference that got past it
// fails at run time with the runner's "may not read" error.
func ensureSharedAccess(ctx context.Context, c client.Client, ns string, need *runnerNeed) error {
	for repoNS, repos := range need.shared {
		var names, secrets []string
		for name, secret := range repos {
			names = append(names, name)
			secrets = append(secrets, secret)
		}
		sort.Strings(names)
		secrets = sortedUnique(secrets)
		if err := ensureRole(ctx, c, jobs.SharedRepositoryRole(repoNS, ns, names, secrets)); err != nil {
			return err
		}
		if err := ensureRoleBinding(ctx, c, jobs.SharedRepositoryRoleBinding(repoNS, ns, need.accounts)); err != nil {
			return err
		}
	}
	var roles rbacv1.RoleList
	if err := c.List(ctx, &roles, client.MatchingLabels{jobs.LabelRunnerNamespace: ns}); err != nil {
		return fmt.Errorf("list runner roles of namespace %s: %w", ns, err)
	}
	for i := range roles.Items {
		r := &roles.Items[i]
		if _, used := need.shared[r.Namespace]; used || len(r.Rules) == 0 {
			continue
		}
		if err := ensureRole(ctx, c, jobs.SharedRepositoryRole(r.Namespace, ns, nil, nil)); err != nil {
			return err
		}
	}
	return nil
}

// runnerNeed is what the runners of one namespace need.
type runnerNeed struct {
	// secrets in the namespace itself.
	secrets []string
	// accounts are the service accounts named by runtimeSettings, besides stash-runner.
	accounts []string
	// hookPods are the Pods that exec hooks run in.
	hookPods []string
	// shared maps the namespace of each allowed Repository elsewhere to its Repositories'
	// names and their storage Secrets.
	shared map[string]map[string]string
}

func sortedUnique(in []string) []string {
	set := map[string]bool{}
	for _, s := range in {
		if s != "" {
			set[s] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// runnerNeeds collects what the runners of ns may read.
func runnerNeeds(ctx context.Context, c client.Client, ns string) (*runnerNeed, error) {
	var secrets, accounts, hookPods []string
	add := func(name string) { secrets = append(secrets, name) }
	repos := map[v1alpha1.RepositoryRef]bool{}
	addTarget := func(t *v1alpha1.Target) {
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
			if t.Ref.AuthSecret != nil {
				add(t.Ref.AuthSecret.Name)
			}
			ab := &unstructured.Unstructured{}
			ab.SetAPIVersion(v1alpha1.AppBindingAPIVersion)
			ab.SetKind(v1alpha1.AppBindingKind)
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: t.Ref.Name}, ab); err == nil {
				s, _, _ := unstructured.NestedString(ab.Object, v1alpha1.AppBindingSecretPath...)
				add(s)
				s, _, _ = unstructured.NestedString(ab.Object, v1alpha1.AppBindingTLSSecretPath...)
				add(s)
			}
		}
	}
	addUse := func(ref v1alpha1.RepositoryRef, t *v1alpha1.Target, rt *v1alpha1.RuntimeSettings) {
		addTarget(t)
		if ref.Namespace == "" {
			ref.Namespace = ns
		}
		repos[ref] = true
		if rt != nil {
			accounts = append(accounts, rt.ServiceAccountName)
		}
	}
	var bcs v1alpha1.BackupConfigurationList
	if err := c.List(ctx, &bcs, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list backupconfigurations in %s: %w", ns, err)
	}
	for i := range bcs.Items {
		b := &bcs.Items[i]
		addUse(b.Spec.Repository, &b.Spec.Target, b.Spec.RuntimeSettings)
		hookNeeds(ctx, c, ns, &b.Spec.Target, b.Spec.Hooks.Handlers(), &secrets, &hookPods)
	}
	var rss v1alpha1.RestoreSessionList
	if err := c.List(ctx, &rss, client.InNamespace(ns)); err != nil {
		return nil, fmt.Errorf("list restoresessions in %s: %w", ns, err)
	}
	for i := range rss.Items {
		r := &rss.Items[i]
		addUse(r.Spec.Repository, &r.Spec.Target, r.Spec.RuntimeSettings)
		if r.Status.Phase != v1alpha1.SessionSucceeded && r.Status.Phase != v1alpha1.SessionFailed {
			hookNeeds(ctx, c, ns, &r.Spec.Target, r.Spec.Hooks.Handlers(), &secrets, &hookPods)
		}
	}
	need := &runnerNeed{shared: map[string]map[string]string{}}
	for ref := range repos {
		var repo v1alpha1.Repository
		switch err := c.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, &repo); {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("get repository %s/%s: %w", ref.Namespace, ref.Name, err)
		}
		if ref.Namespace == ns {
			add(repo.Spec.Backend.StorageSecretName)
			continue
		}
		allowed, err := RepositoryAllows(ctx, c, &repo, ns)
		if err != nil {
			return nil, err
		}
		if !allowed {
			continue
		}
		if need.shared[ref.Namespace] == nil {
			need.shared[ref.Namespace] = map[string]string{}
		}
		need.shared[ref.Namespace][ref.Name] = repo.Spec.Backend.StorageSecretName
	}
	need.secrets, need.accounts, need.hookPods = sortedUnique(secrets), sortedUnique(accounts), sortedUnique(hookPods)
	return need, nil
}
