// Package webhook serves the admission webhooks of stash.dev objects: a mutating webhook that
// applies the API's defaults and a validating webhook that runs the API's validation, the
// very functions `kubectl stash validate` runs offline, plus the checks only the cluster can
// answer (does the Repository exist, may this namespace use it, does the Secret hold the
// keys the backend needs).
package webhook

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/webhook/controllers"
)

// The webhook markers below generate config/webhook/manifests.yaml. sideEffects=None lets
// `kubectl apply --dry-run=server` (and `kubectl stash validate --server-side`) reach them.
//
// +kubebuilder:webhook:path=/mutate-stash-dev-v1alpha1-repository,mutating=true,failurePolicy=fail,sideEffects=None,groups=stash.dev,resources=repositories,verbs=create;update,versions=v1alpha1,name=mrepository.stash.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-stash-dev-v1alpha1-repository,mutating=false,failurePolicy=fail,sideEffects=None,groups=stash.dev,resources=repositories,verbs=create;update,versions=v1alpha1,name=vrepository.stash.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/mutate-stash-dev-v1alpha1-backupconfiguration,mutating=true,failurePolicy=fail,sideEffects=None,groups=stash.dev,resources=backupconfigurations,verbs=create;update,versions=v1alpha1,name=mbackupconfiguration.stash.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-stash-dev-v1alpha1-backupconfiguration,mutating=false,failurePolicy=fail,sideEffects=None,groups=stash.dev,resources=backupconfigurations,verbs=create;update,versions=v1alpha1,name=vbackupconfiguration.stash.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/mutate-stash-dev-v1alpha1-backupsession,mutating=true,failurePolicy=fail,sideEffects=None,groups=stash.dev,resources=backupsessions,verbs=create;update,versions=v1alpha1,name=mbackupsession.stash.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-stash-dev-v1alpha1-backupsession,mutating=false,failurePolicy=fail,sideEffects=None,groups=stash.dev,resources=backupsessions,verbs=create;update,versions=v1alpha1,name=vbackupsession.stash.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/mutate-stash-dev-v1alpha1-restoresession,mutating=true,failurePolicy=fail,sideEffects=None,groups=stash.dev,resources=restoresessions,verbs=create;update,versions=v1alpha1,name=mrestoresession.stash.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-stash-dev-v1alpha1-restoresession,mutating=false,failurePolicy=fail,sideEffects=None,groups=stash.dev,resources=restoresessions,verbs=create;update,versions=v1alpha1,name=vrestoresession.stash.dev,admissionReviewVersions=v1

// Setup registers the defaulting and validating webhooks of the four kinds with mgr.
// The webhooks read Repositories, Secrets, BackupConfigurations and AppBindings through
// the manager's client.
func Setup(mgr ctrl.Manager) error {
	c := mgr.GetAPIReader() // uncached: admission must see objects created a moment ago
	if err := ctrl.NewWebhookManagedBy(mgr, &v1alpha1.Repository{}).
		WithDefaulter(defaulter[*v1alpha1.Repository]{}).WithValidator(&repositoryWebhook{c}).Complete(); err != nil {
		return fmt.Errorf("register repository webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &v1alpha1.BackupConfiguration{}).
		WithDefaulter(defaulter[*v1alpha1.BackupConfiguration]{}).WithValidator(&backupConfigurationWebhook{c}).Complete(); err != nil {
		return fmt.Errorf("register backupconfiguration webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &v1alpha1.BackupSession{}).
		WithDefaulter(defaulter[*v1alpha1.BackupSession]{}).WithValidator(&backupSessionWebhook{c}).Complete(); err != nil {
		return fmt.Errorf("register backupsession webhook: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &v1alpha1.RestoreSession{}).
		WithDefaulter(defaulter[*v1alpha1.RestoreSession]{}).WithValidator(&restoreSessionWebhook{c}).Complete(); err != nil {
		return fmt.Errorf("register restoresession webhook: %w", err)
	}
	return nil
}

// defaulter applies the API's own Default to any of the four kinds.
type defaulter[T interface {
	client.Object
	Default()
}] struct{}

func (defaulter[T]) Default(_ context.Context, obj T) error {
	obj.Default()
	return nil
}

// invalid turns field errors into the API server's Invalid status, which names every field.
func invalid(obj client.Object, kind string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(schema.GroupKind{Group: v1alpha1.GroupVersion.Group, Kind: kind}, obj.GetName(), errs)
}

type repositoryWebhook struct{ c client.Reader }

func (w *repositoryWebhook) ValidateCreate(ctx context.Context, r *v1alpha1.Repository) (admission.Warnings, error) {
	return w.validate(ctx, r, r.Validate())
}

func (w *repositoryWebhook) ValidateUpdate(ctx context.Context, old, r *v1alpha1.Repository) (admission.Warnings, error) {
	return w.validate(ctx, r, r.ValidateUpdate(old))
}

func (w *repositoryWebhook) ValidateDelete(context.Context, *v1alpha1.Repository) (admission.Warnings, error) {
	return nil, nil
}

func (w *repositoryWebhook) validate(ctx context.Context, r *v1alpha1.Repository, errs field.ErrorList) (admission.Warnings, error) {
	var warnings admission.Warnings
	if len(errs) == 0 {
		var err error
		var more field.ErrorList
		warnings, more, err = checkStorageSecret(ctx, w.c, r)
		if err != nil {
			return nil, err
		}
		errs = append(errs, more...)
	}
	return warnings, invalid(r, v1alpha1.KindRepository, errs)
}

// checkStorageSecret warns when the storage Secret does not exist yet (GitOps tools apply in
// any order) and denies when it exists without the keys the backend needs.
func checkStorageSecret(ctx context.Context, c client.Reader, r *v1alpha1.Repository) (admission.Warnings, field.ErrorList, error) {
	name := r.Spec.Backend.StorageSecretName
	p := field.NewPath("spec", "backend", "storageSecretName")
	var s corev1.Secret
	switch err := c.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: name}, &s); {
	case apierrors.IsNotFound(err):
		return admission.Warnings{fmt.Sprintf("storage Secret %q not found in namespace %q: backups fail until it exists (see: kubectl stash create secret storage %s -n %s)", name, r.Namespace, name, r.Namespace)}, nil, nil
	case apierrors.IsForbidden(err):
		return admission.Warnings{fmt.Sprintf("cannot check storage Secret %q: %v", name, err)}, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("get storage secret %s/%s: %w", r.Namespace, name, err)
	}
	var errs field.ErrorList
	for _, k := range r.Spec.Backend.MissingSecretKeys(s.Data) {
		errs = append(errs, field.Invalid(p, name, fmt.Sprintf("Secret %q has no %s key, which this backend needs", name, k)))
	}
	return nil, errs, nil
}

type backupConfigurationWebhook struct{ c client.Reader }

func (w *backupConfigurationWebhook) ValidateCreate(ctx context.Context, b *v1alpha1.BackupConfiguration) (admission.Warnings, error) {
	return w.validate(ctx, b, b.Validate())
}

func (w *backupConfigurationWebhook) ValidateUpdate(ctx context.Context, old, b *v1alpha1.BackupConfiguration) (admission.Warnings, error) {
	return w.validate(ctx, b, b.ValidateUpdate(old))
}

func (w *backupConfigurationWebhook) ValidateDelete(context.Context, *v1alpha1.BackupConfiguration) (admission.Warnings, error) {
	return nil, nil
}

func (w *backupConfigurationWebhook) validate(ctx context.Context, b *v1alpha1.BackupConfiguration, errs field.ErrorList) (admission.Warnings, error) {
	if len(errs) > 0 {
		return nil, invalid(b, v1alpha1.KindBackupConfiguration, errs)
	}
	warnings, errs, err := checkReferences(ctx, w.c, b.Namespace, &b.Spec.Repository, &b.Spec.Target)
	if err != nil {
		return nil, err
	}
	return append(warnings, b.Warnings()...), invalid(b, v1alpha1.KindBackupConfiguration, errs)
}

type restoreSessionWebhook struct{ c client.Reader }

func (w *restoreSessionWebhook) ValidateCreate(ctx context.Context, r *v1alpha1.RestoreSession) (admission.Warnings, error) {
	return w.validate(ctx, r, r.Validate())
}

func (w *restoreSessionWebhook) ValidateUpdate(ctx context.Context, old, r *v1alpha1.RestoreSession) (admission.Warnings, error) {
	return w.validate(ctx, r, r.ValidateUpdate(old))
}

func (w *restoreSessionWebhook) ValidateDelete(context.Context, *v1alpha1.RestoreSession) (admission.Warnings, error) {
	return nil, nil
}

func (w *restoreSessionWebhook) validate(ctx context.Context, r *v1alpha1.RestoreSession, errs field.ErrorList) (admission.Warnings, error) {
	if len(errs) > 0 {
		return nil, invalid(r, v1alpha1.KindRestoreSession, errs)
	}
	warnings, errs, err := checkReferences(ctx, w.c, r.Namespace, &r.Spec.Repository, &r.Spec.Target)
	if err != nil {
		return nil, err
	}
	return warnings, invalid(r, v1alpha1.KindRestoreSession, errs)
}

// checkReferences looks up what a BackupConfiguration or RestoreSession names. Missing
// objects are warnings: GitOps tools apply in any order, and the controller reports them in
// status until they appear. A Repository whose usage policy excludes the namespace is a
// denial: that will not fix itself.
func checkReferences(ctx context.Context, c client.Reader, ns string, ref *v1alpha1.RepositoryRef, t *v1alpha1.Target) (admission.Warnings, field.ErrorList, error) {
	var warnings admission.Warnings
	var errs field.ErrorList
	repoNS := ref.Namespace
	if repoNS == "" {
		repoNS = ns
	}
	var repo v1alpha1.Repository
	switch err := c.Get(ctx, types.NamespacedName{Namespace: repoNS, Name: ref.Name}, &repo); {
	case apierrors.IsNotFound(err):
		warnings = append(warnings, fmt.Sprintf("Repository %q not found in namespace %q: nothing runs until it exists (see: kubectl stash create repository --help)", ref.Name, repoNS))
	case err != nil:
		return nil, nil, fmt.Errorf("get repository %s/%s: %w", repoNS, ref.Name, err)
	default:
		allowed, err := controllers.RepositoryAllows(ctx, c, &repo, ns)
		if err != nil {
			return nil, nil, err
		}
		if !allowed {
			errs = append(errs, field.Forbidden(field.NewPath("spec", "repository"),
				fmt.Sprintf("Repository %s/%s does not allow namespace %q to use it (spec.usagePolicy.allowedNamespaces)", repoNS, ref.Name, ns)))
		}
	}
	switch {
	case t.Ref != nil:
		ab := &unstructured.Unstructured{}
		ab.SetAPIVersion(v1alpha1.AppBindingAPIVersion)
		ab.SetKind(v1alpha1.AppBindingKind)
		err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: t.Ref.Name}, ab)
		if err != nil && (apierrors.IsNotFound(err) || metaNoMatch(err)) {
			warnings = append(warnings, fmt.Sprintf("AppBinding %q not found in namespace %q", t.Ref.Name, ns))
		} else if err != nil {
			return nil, nil, fmt.Errorf("get appbinding %s/%s: %w", ns, t.Ref.Name, err)
		}
	case t.Redis != nil && t.Redis.AuthSecret != nil:
		var s corev1.Secret
		err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: t.Redis.AuthSecret.Name}, &s)
		switch {
		case apierrors.IsNotFound(err):
			warnings = append(warnings, fmt.Sprintf("Redis auth Secret %q not found in namespace %q", t.Redis.AuthSecret.Name, ns))
		case err == nil && len(s.Data[t.Redis.AuthSecret.PasswordKey]) == 0:
			errs = append(errs, field.Invalid(field.NewPath("spec", "target", "redis", "authSecret", "passwordKey"), t.Redis.AuthSecret.PasswordKey,
				fmt.Sprintf("Secret %q has no key %q", t.Redis.AuthSecret.Name, t.Redis.AuthSecret.PasswordKey)))
		}
	}
	return warnings, errs, nil
}

// metaNoMatch reports whether err says the AppBinding kind is not installed.
func metaNoMatch(err error) bool {
	return strings.Contains(err.Error(), "no matches for kind")
}

type backupSessionWebhook struct{ c client.Reader }

func (w *backupSessionWebhook) ValidateCreate(ctx context.Context, s *v1alpha1.BackupSession) (admission.Warnings, error) {
	errs := s.Validate()
	if len(errs) == 0 {
		var bc v1alpha1.BackupConfiguration
		switch err := w.c.Get(ctx, types.NamespacedName{Namespace: s.Namespace, Name: s.Spec.Invoker.Name}, &bc); {
		case apierrors.IsNotFound(err):
			errs = append(errs, field.NotFound(field.NewPath("spec", "invoker", "name"), s.Spec.Invoker.Name))
		case err != nil:
			return nil, fmt.Errorf("get backupconfiguration %s/%s: %w", s.Namespace, s.Spec.Invoker.Name, err)
		}
	}
	return nil, invalid(s, v1alpha1.KindBackupSession, errs)
}

func (w *backupSessionWebhook) ValidateUpdate(_ context.Context, old, s *v1alpha1.BackupSession) (admission.Warnings, error) {
	return nil, invalid(s, v1alpha1.KindBackupSession, s.ValidateUpdate(old))
}

func (w *backupSessionWebhook) ValidateDelete(context.Context, *v1alpha1.BackupSession) (admission.Warnings, error) {
	return nil, nil
}
