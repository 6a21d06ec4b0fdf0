package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"stash.dev/redis/api/v1alpha1"
)

// kube holds the clients of one command run and the namespace it works in.
type kube struct {
	getter    genericclioptions.RESTClientGetter
	config    *rest.Config
	dynamic   dynamic.Interface
	core      kubernetes.Interface
	namespace string
	force     bool // apply takes over fields that other managers own
}

// newKube connects to the cluster the kubeconfig flags name. Nothing is sent yet.
func newKube(getter genericclioptions.RESTClientGetter) (*kube, error) {
	ns, _, err := getter.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("read kubeconfig: %w", err)
	}
	cfg, err := getter.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("read kubeconfig: %w (see: kubectl config view)", err)
	}
	k := &kube{getter: getter, config: cfg, namespace: ns}
	if k.dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	if k.core, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("create client: %w", err)
	}
	return k, nil
}

// stashResource is the resource of one of our kinds.
func stashResource(kind string) schema.GroupVersionResource {
	return v1alpha1.GroupVersion.WithResource(resourceOf[kind])
}

// get reads one of our objects into out.
func (k *kube) get(ctx context.Context, kind, name string, out any) error {
	u, err := k.dynamic.Resource(stashResource(kind)).Namespace(k.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	return fromUnstructured(u, out)
}

// list reads our objects of a kind, selected by labels, into out (a *...List).
func (k *kube) list(ctx context.Context, kind, selector string, out any) error {
	u, err := k.dynamic.Resource(stashResource(kind)).Namespace(k.namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return err
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), out)
}

// create creates one of our objects (one with generateName, which apply cannot) into out.
func (k *kube) create(ctx context.Context, kind string, obj runtime.Object, out any) error {
	u, err := toUnstructured(obj)
	if err != nil {
		return err
	}
	created, err := k.dynamic.Resource(stashResource(kind)).Namespace(k.namespace).Create(ctx, u, metav1.CreateOptions{FieldManager: FieldManager})
	if err != nil {
		return err
	}
	return fromUnstructured(created, out)
}

// mergePatch patches one of our objects.
func (k *kube) mergePatch(ctx context.Context, kind, name string, patch any) error {
	data, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	_, err = k.dynamic.Resource(stashResource(kind)).Namespace(k.namespace).Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{FieldManager: FieldManager})
	return err
}

// apply server-side applies obj (any kind, with apiVersion and kind set) through the RESTMapper.
func (k *kube) apply(ctx context.Context, obj runtime.Object, dryRun bool) (*unstructured.Unstructured, error) {
	u, err := toUnstructured(obj)
	if err != nil {
		return nil, err
	}
	ri, err := k.resourceFor(u)
	if err != nil {
		return nil, err
	}
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: k.force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return ri.Apply(ctx, u.GetName(), u, opts)
}

// resourceFor finds the client of an object's kind, namespaced in its namespace (or ours).
func (k *kube) resourceFor(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	var m *meta.RESTMapping
	if gvk.Group == v1alpha1.GroupVersion.Group {
		m = &meta.RESTMapping{Resource: stashResource(gvk.Kind), Scope: meta.RESTScopeNamespace}
	} else {
		mapper, err := k.getter.ToRESTMapper()
		if err != nil {
			return nil, err
		}
		if m, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			// A CRD applied a moment ago is not in the cached discovery yet.
			if meta.IsNoMatchError(err) {
				if r, ok := mapper.(meta.ResettableRESTMapper); ok {
					r.Reset()
					m, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				}
			}
			if err != nil {
				return nil, err
			}
		}
	}
	if m.Scope.Name() == meta.RESTScopeNameRoot {
		return k.dynamic.Resource(m.Resource), nil
	}
	ns := u.GetNamespace()
	if ns == "" {
		ns = k.namespace
		u.SetNamespace(ns)
	}
	return k.dynamic.Resource(m.Resource).Namespace(ns), nil
}

// toUnstructured converts a typed object for a write: no status, no zero creationTimestamp.
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u, nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("convert %T: %w", obj, err)
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return &unstructured.Unstructured{Object: m}, nil
}

func fromUnstructured(u *unstructured.Unstructured, out any) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), out); err != nil {
		return fmt.Errorf("decode %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}

// explain turns an API error into one line for a user: what failed, on which object, and
// the command to run next. kind and name describe the object the request was about.
func (k *kube) explain(err error, kind, name, next string) error {
	if err == nil {
		return nil
	}
	resource := strings.ToLower(kind)
	hint := func(s string) string {
		if s == "" {
			return ""
		}
		return " (see: " + s + ")"
	}
	var status apierrors.APIStatus
	switch {
	case isUnreachable(err):
		return fmt.Errorf("cannot reach the Kubernetes API server at %s: %s (check --context and --kubeconfig; see: kubectl cluster-info)", k.config.Host, rootCause(err))
	case apierrors.IsNotFound(err):
		var d *metav1.StatusDetails
		if errors.As(err, &status) {
			d = status.Status().Details
		}
		switch {
		case (d == nil || d.Name == "") && resourceOf[kind] != "":
			return fmt.Errorf("the server has no %s resource: the stash.dev CRDs are not installed (see: kubectl stash install)", resourceOf[kind])
		case d != nil && name != "" && d.Name == name && (d.Kind == resourceOf[kind] || d.Kind == resource+"s"):
			return fmt.Errorf("%s %q not found in namespace %q%s", resource, name, k.namespace, hint(next))
		}
		return fmt.Errorf("%s%s", firstLine(err.Error()), hint(next)) // another object, such as the namespace
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s%s", firstLine(err.Error()), hint(fmt.Sprintf("kubectl auth can-i --list -n %s, and ask a cluster admin for access", k.namespace)))
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the API server did not accept your credentials: %s (see: kubectl config view --minify)", firstLine(err.Error()))
	case meta.IsNoMatchError(err):
		return fmt.Errorf("%s (see: kubectl stash install)", firstLine(err.Error()))
	}
	return errors.New(firstLine(err.Error()))
}

// isUnreachable reports whether err is a failure to connect at all.
func isUnreachable(err error) bool {
	var ue *url.Error
	var oe *net.OpError
	return errors.As(err, &oe) || (errors.As(err, &ue) && !errors.As(err, new(apierrors.APIStatus)))
}

func rootCause(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Error()
	}
	return firstLine(err.Error())
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// completeNames completes the first argument with the names of our objects of a kind in
// the namespace of the command line's flags.
func completeNames(getter genericclioptions.RESTClientGetter, kind string) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		k, err := newKube(getter)
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		list, err := k.dynamic.Resource(stashResource(kind)).Namespace(k.namespace).List(cmd.Context(), metav1.ListOptions{})
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []cobra.Completion
		for _, item := range list.Items {
			if strings.HasPrefix(item.GetName(), toComplete) {
				names = append(names, item.GetName())
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
