package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
)

// as is a client that acts as service account name of namespace namespace, as a runner Pod
// running under it would.
func as(t *testing.T, namespace, name string) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + namespace + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}}
	c, err := client.New(cfg, client.Options{Scheme: cluster.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustCreate(t *testing.T, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := cluster.Client.Create(context.Background(), o); err != nil {
			t.Fatalf("create %s: %v", o.GetName(), err)
		}
	}
}

// TestRunnerUnderChosenServiceAccount: runtimeSettings.serviceAccountName makes the runner's
// Pod run as the user's account (one bound to a cloud role, say); the controller binds the
// runner's Role to it, so that the runner can read its session, Repository and Secrets.
func TestRunnerUnderChosenServiceAccount(t *testing.T) {
	ctx := context.Background()
	bc := newBC("own-account")
	bc.Spec.RuntimeSettings = &v1alpha1.RuntimeSettings{ServiceAccountName: "backup-identity"}
	mustCreate(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "backup-identity", Namespace: ns}}, bc)
	runner := as(t, ns, "backup-identity")
	eventually(t, "the chosen account reads the BackupConfiguration and the storage Secret", func() error {
		if err := runner.Get(ctx, types.NamespacedName{Namespace: ns, Name: "own-account"}, &v1alpha1.BackupConfiguration{}); err != nil {
			return err
		}
		return runner.Get(ctx, types.NamespacedName{Namespace: ns, Name: "storage"}, &corev1.Secret{})
	})
	if err := runner.Get(ctx, types.NamespacedName{Namespace: ns, Name: "unrelated"}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Errorf("the chosen account read a Secret nobody refers to: %v", err)
	}
	if err := as(t, ns, "someone-else").Get(ctx, types.NamespacedName{Namespace: ns, Name: "storage"}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Errorf("an account no runtimeSettings name read the storage Secret: %v", err)
	}
}

// TestRepositoryInAnotherNamespace: a Repository whose usage policy allows the namespace of a
// BackupConfiguration gets a Role, in the Repository's namespace, that lets that namespace's
// runners read the Repository and its storage Secret, nothing else; a Repository whose policy
// does not allow it gets none. When the BackupConfiguration goes, so does the access.
func TestRepositoryInAnotherNamespace(t *testing.T) {
	ctx := context.Background()
	const repos = "shared-repos"
	if err := cluster.CreateNamespace(ctx, repos, nil); err != nil {
		t.Fatal(err)
	}
	repo := func(name, secret string, from v1alpha1.FromNamespaces) *v1alpha1.Repository {
		return &v1alpha1.Repository{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: repos}, Spec: v1alpha1.RepositorySpec{
			Backend:     v1alpha1.Backend{StorageSecretName: secret, GCS: &v1alpha1.GCSSpec{Bucket: "backups", Prefix: name}},
			UsagePolicy: &v1alpha1.UsagePolicy{AllowedNamespaces: v1alpha1.AllowedNamespaces{From: from}},
		}}
	}
	secret := func(name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: repos}, StringData: map[string]string{"RESTIC_PASSWORD": secretValue}}
	}
	mustCreate(t, secret("shared-storage"), secret("private-storage"), secret("other-storage"),
		repo("shared", "shared-storage", v1alpha1.NamespacesFromAll))

	// A reference the usage policy refuses is denied by the admission webhook, clearly.
	denied := newBC("cross-denied")
	denied.Spec.Repository = v1alpha1.RepositoryRef{Name: "private", Namespace: repos}
	late := denied.DeepCopy()
	mustCreate(t, repo("private", "private-storage", v1alpha1.NamespacesFromSame))
	err := cluster.Client.Create(ctx, denied)
	if want := `Repository shared-repos/private does not allow namespace "ctrl" to use it (spec.usagePolicy.allowedNamespaces)`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("create a BackupConfiguration of a Repository that is not shared with it: %v, want a denial saying %q", err, want)
	}
	// One that got in before its Repository existed is never granted access by the controller.
	if err := cluster.Client.Delete(ctx, repo("private", "", "")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Repository is gone", func() error {
		if err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: repos, Name: "private"}, &v1alpha1.Repository{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("get: %v", err)
		}
		return nil
	})
	late.Name = "cross-late"
	mustCreate(t, late, repo("private", "private-storage", v1alpha1.NamespacesFromSame))
	// Created last, so that once its access shows the controller has seen the others.
	allowed := newBC("cross-allowed")
	allowed.Spec.Repository = v1alpha1.RepositoryRef{Name: "shared", Namespace: repos}
	mustCreate(t, allowed)

	runner := as(t, ns, v1alpha1.RunnerServiceAccount)
	eventually(t, "the runner reads the shared Repository and its storage Secret", func() error {
		if err := runner.Get(ctx, types.NamespacedName{Namespace: repos, Name: "shared"}, &v1alpha1.Repository{}); err != nil {
			return err
		}
		return runner.Get(ctx, types.NamespacedName{Namespace: repos, Name: "shared-storage"}, &corev1.Secret{})
	})
	for _, name := range []string{"private-storage", "other-storage"} {
		if err := runner.Get(ctx, types.NamespacedName{Namespace: repos, Name: name}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
			t.Errorf("runner read Secret %s/%s: %v", repos, name, err)
		}
	}
	if err := runner.Get(ctx, types.NamespacedName{Namespace: repos, Name: "private"}, &v1alpha1.Repository{}); !apierrors.IsForbidden(err) {
		t.Errorf("runner read the Repository that does not allow its namespace: %v", err)
	}
	if err := runner.List(ctx, &corev1.SecretList{}, client.InNamespace(repos)); !apierrors.IsForbidden(err) {
		t.Errorf("runner listed Secrets of %s: %v", repos, err)
	}
	if err := as(t, "elsewhere", v1alpha1.RunnerServiceAccount).Get(ctx, types.NamespacedName{Namespace: repos, Name: "shared-storage"}, &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Errorf("the runner of a namespace that uses no shared Repository read its Secret: %v", err)
	}

	if err := cluster.Client.Delete(ctx, allowed); err != nil {
		t.Fatal(err)
	}
	eventually(t, "access ends with the BackupConfiguration", func() error {
		err := runner.Get(ctx, types.NamespacedName{Namespace: repos, Name: "shared-storage"}, &corev1.Secret{})
		if !apierrors.IsForbidden(err) {
			return fmt.Errorf("runner still reads the storage Secret: %v", err)
		}
		return nil
	})
}
