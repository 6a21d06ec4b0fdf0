package plugin

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/config"
)

// Names of the installed objects.
const (
	installNamespace   = "stash-system"
	controllerName     = "stash-webhook"
	defaultImage       = "stash.dev/stash-webhook:latest"
	defaultRunnerImage = "stash.dev/stash-runner:latest"
	runnerImageFlag    = "--runner-image="
	appBindingCRD      = "appbindings.appcatalog.appscode.com"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installSettings change the embedded manifests.
type installSettings struct {
	image, runnerImage string
	webhookURL         string
	caBundle           []byte
	skipDeployment     bool
	withAppBinding     bool
}

// installObjects returns the embedded manifests, changed by s, in the order they are applied.
func installObjects(fsys fs.FS, s installSettings) ([]*unstructured.Unstructured, error) {
	var files []string
	for _, glob := range []string{"crd/bases/*.yaml", "crd/appcatalog/*.yaml", "deploy/*.yaml"} {
		m, err := fs.Glob(fsys, glob)
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		if path.Base(f) == "kustomization.yaml" || (strings.HasPrefix(f, "crd/appcatalog/") && !s.withAppBinding) {
			continue
		}
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		docs, err := splitDocuments(f, bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			j, err := d.toJSON()
			if err != nil {
				return nil, fmt.Errorf("embedded %s: %w", f, err)
			}
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(j); err != nil {
				return nil, fmt.Errorf("embedded %s: %w", f, err)
			}
			if u.GetKind() == "Deployment" && s.skipDeployment {
				continue
			}
			if err := customize(u, s); err != nil {
				return nil, err
			}
			objs = append(objs, u)
		}
	}
	sort.SliceStable(objs, func(i, j int) bool { return kindOrder(objs[i].GetKind()) < kindOrder(objs[j].GetKind()) })
	return objs, nil
}

func kindOrder(kind string) int {
	order := []string{"CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Secret", "ConfigMap",
		"Service", "Deployment", "PodDisruptionBudget", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
	for i, k := range order {
		if k == kind {
			return i
		}
	}
	return len(order)
}

// customize sets the images of the Deployment and the clientConfig of the webhooks.
func customize(u *unstructured.Unstructured, s installSettings) error {
	switch u.GetKind() {
	case "Deployment":
		containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		for _, item := range containers {
			c, ok := item.(map[string]any)
			if !ok {
				continue
			}
			if c["image"] == defaultImage && s.image != "" {
				c["image"] = s.image
			}
			args, _ := c["args"].([]any)
			for i, a := range args {
				if str, ok := a.(string); ok && strings.HasPrefix(str, runnerImageFlag) && s.runnerImage != "" {
					args[i] = runnerImageFlag + s.runnerImage
				}
			}
		}
		return unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers")
	case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
		hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
		for _, item := range hooks {
			h, _ := item.(map[string]any)
			cc, _ := h["clientConfig"].(map[string]any)
			if cc == nil {
				continue
			}
			if s.webhookURL != "" {
				p, _, _ := unstructured.NestedString(cc, "service", "path")
				delete(cc, "service")
				cc["url"] = strings.TrimRight(s.webhookURL, "/") + p
			}
			if len(s.caBundle) > 0 {
				cc["caBundle"] = base64.StdEncoding.EncodeToString(s.caBundle)
			}
		}
		return unstructured.SetNestedSlice(u.Object, hooks, "webhooks")
	}
	return nil
}

// InstallOptions installs the CRDs, the controller and the webhooks from the manifests
// embedded in the plugin.
type InstallOptions struct {
	writeOptions
	settings     installSettings
	caBundleFile string
}

// NewCmdInstall returns `kubectl stash install`.
func NewCmdInstall(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &InstallOptions{writeOptions: newWriteOptions(getter, streams, "applied")}
	cmd := &cobra.Command{
		Use:   "install [--image IMAGE] [--runner-image IMAGE] [--webhook-url URL --ca-bundle-file FILE] [--skip-deployment]",
		Short: "Install the CRDs, the controller and its admission webhooks into the cluster",
		Long: `Install server-side applies the manifests embedded in this plugin: the stash.dev CRDs, the
AppBinding CRD when the cluster lacks it, the stash-system namespace, RBAC, the stash-webhook
Deployment and Service, and the webhook configurations. Running it again upgrades.

For a controller running as a local process, --webhook-url points the webhook configurations at
it instead of at the Service (with --ca-bundle-file, the CA of its serving certificate), and
--skip-deployment leaves the Deployment out.`,
		Example: `  kubectl stash install
  kubectl stash install --image registry.example/stash-webhook:v0.1.0 --runner-image registry.example/stash-runner:v0.1.0
  kubectl stash install --dry-run -o yaml > stash.yaml
  kubectl stash install --skip-deployment --webhook-url https://192.168.1.10:9443 --ca-bundle-file ca.crt`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	o.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.settings.image, "image", defaultImage, "image of the controller (stash-webhook)")
	f.StringVar(&o.settings.runnerImage, "runner-image", defaultRunnerImage, "image the backup and restore Jobs run (stash-runner)")
	f.StringVar(&o.settings.webhookURL, "webhook-url", "", "https URL of a controller outside the cluster; the webhook configurations call it instead of the Service")
	f.StringVar(&o.caBundleFile, "ca-bundle-file", "", "PEM CA bundle that signs the webhook's serving certificate (default: injected by the controller)")
	f.BoolVar(&o.settings.skipDeployment, "skip-deployment", false, "do not install the controller Deployment")
	return cmd
}

// Complete reads the CA bundle and connects to the cluster.
func (o *InstallOptions) Complete(_ *cobra.Command, _ []string) error {
	if o.caBundleFile != "" {
		b, err := os.ReadFile(o.caBundleFile)
		if err != nil {
			return fmt.Errorf("read --ca-bundle-file: %w", err)
		}
		o.settings.caBundle = b
	}
	return o.complete()
}

// Validate checks the flags.
func (o *InstallOptions) Validate() error {
	if o.settings.webhookURL != "" {
		u, err := url.Parse(o.settings.webhookURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("--webhook-url %q: the API server calls webhooks over https only: use https://HOST:PORT", o.settings.webhookURL)
		}
	}
	if o.settings.image == "" || o.settings.runnerImage == "" {
		return errors.New("--image and --runner-image must not be empty")
	}
	return nil
}

// Run applies the manifests.
func (o *InstallOptions) Run(ctx context.Context) error {
	k := o.kube
	o.settings.withAppBinding = true
	if !o.localOnly() {
		_, err := k.dynamic.Resource(crdResource).Get(ctx, appBindingCRD, metav1.GetOptions{})
		switch {
		case err == nil:
			o.settings.withAppBinding = false
		case !apierrors.IsNotFound(err):
			return k.explain(err, "CustomResourceDefinition", appBindingCRD, "")
		}
	}
	objs, err := installObjects(config.FS, o.settings)
	if err != nil {
		return err
	}
	if k != nil {
		k.force = true // install owns these objects, whoever wrote them before
	}
	for _, u := range objs {
		if err := o.emit(ctx, u, "kubectl stash status"); err != nil {
			return err
		}
	}
	if o.localOnly() || o.dryRun == dryRunServer {
		return nil
	}
	if err := waitEstablished(ctx, k, 30*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(o.ErrOut, "Installed kubectl-stash (see: kubectl stash status)\n")
	return nil
}

// waitEstablished waits until the API server serves our CRDs, so that the next command
// (kubectl stash create ...) finds them.
func waitEstablished(ctx context.Context, k *kube, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, kind := range stashKinds {
		name := resourceOf[kind] + "." + v1alpha1.GroupVersion.Group
		for {
			crd, err := k.dynamic.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return k.explain(err, "CustomResourceDefinition", name, "")
			}
			conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			established := false
			for _, c := range conds {
				m, _ := c.(map[string]any)
				established = established || (m["type"] == "Established" && m["status"] == "True")
			}
			if established {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s is not established after %s (see: kubectl describe crd %s)", name, timeout, name)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// UninstallOptions removes what install applied.
type UninstallOptions struct {
	genericiooptions.IOStreams
	clusterCommand
	keepCRDs bool
}

// NewCmdUninstall returns `kubectl stash uninstall`.
func NewCmdUninstall(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &UninstallOptions{IOStreams: streams, clusterCommand: clusterCommand{getter: getter}}
	cmd := &cobra.Command{
		Use:   "uninstall [--keep-crds]",
		Short: "Remove the webhooks, the controller and the CRDs (with every stash.dev object)",
		Long: `Uninstall deletes what install applied, webhooks first. Deleting the CRDs deletes every
Repository, BackupConfiguration and session in the cluster (the snapshots in object storage
stay); --keep-crds keeps them. The AppBinding CRD is never deleted: KubeDB may own it.`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	cmd.Flags().BoolVar(&o.keepCRDs, "keep-crds", false, "keep the stash.dev CRDs and so every stash.dev object")
	return cmd
}

// Validate has nothing to check.
func (o *UninstallOptions) Validate() error { return nil }

// Run deletes the objects in reverse order.
func (o *UninstallOptions) Run(ctx context.Context) error {
	k := o.kube
	objs, err := installObjects(config.FS, installSettings{})
	if err != nil {
		return err
	}
	var errs []error
	for i := len(objs) - 1; i >= 0; i-- {
		u := objs[i]
		if u.GetKind() == "CustomResourceDefinition" && o.keepCRDs {
			continue
		}
		ri, err := k.resourceFor(u)
		if err != nil {
			if isUnreachable(err) {
				return k.explain(err, u.GetKind(), u.GetName(), "")
			}
			continue // the kind is unknown to this cluster, so there is nothing to delete
		}
		cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		if err == nil && cur.GetDeletionTimestamp() != nil {
			continue // already going, as a Namespace does until its contents are gone
		}
		policy := metav1.DeletePropagationBackground
		if err == nil {
			err = ri.Delete(ctx, u.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy})
		}
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			errs = append(errs, k.explain(err, u.GetKind(), u.GetName(), ""))
		default:
			fmt.Fprintf(o.Out, "%s/%s deleted\n", strings.ToLower(u.GetKind()), u.GetName())
		}
	}
	return errors.Join(errs...)
}

// StatusOptions reports whether the controller, the webhooks and the CRDs work.
type StatusOptions struct {
	genericiooptions.IOStreams
	clusterCommand
}

// NewCmdStatus returns `kubectl stash status`.
func NewCmdStatus(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{IOStreams: streams, clusterCommand: clusterCommand{getter: getter}}
	return &cobra.Command{
		Use:   "status",
		Short: "Check the installation: controller replicas, webhook reachability, CRD versions",
		Args:  cobra.NoArgs,
		RunE:  runE(o),
	}
}

// Validate has nothing to check.
func (o *StatusOptions) Validate() error { return nil }

// Run prints one line per check and fails when one fails.
func (o *StatusOptions) Run(ctx context.Context) error {
	k := o.kube
	tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	var failed []string
	report := func(what string, ok bool, detail string) {
		state := "ok"
		if !ok {
			state = "FAIL"
			failed = append(failed, what)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", what, state, detail)
	}

	d, err := k.core.AppsV1().Deployments(installNamespace).Get(ctx, controllerName, metav1.GetOptions{})
	switch {
	case isUnreachable(err):
		return k.explain(err, "Deployment", controllerName, "")
	case apierrors.IsNotFound(err):
		report("controller", false, fmt.Sprintf("no Deployment %s/%s (see: kubectl stash install)", installNamespace, controllerName))
	case err != nil:
		report("controller", false, firstLine(err.Error()))
	default:
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		image := ""
		if cs := d.Spec.Template.Spec.Containers; len(cs) > 0 {
			image = cs[0].Image
		}
		report("controller", d.Status.ReadyReplicas > 0, fmt.Sprintf("%d/%d replicas ready, image %s (see: kubectl -n %s describe deployment %s)",
			d.Status.ReadyReplicas, want, image, installNamespace, controllerName))
	}

	ok, detail := o.webhook(ctx)
	report("webhook", ok, detail)

	for _, kind := range stashKinds {
		name := resourceOf[kind] + "." + v1alpha1.GroupVersion.Group
		crd, err := k.dynamic.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			report("crd "+name, false, firstLine(err.Error())+" (see: kubectl stash install)")
			continue
		}
		var served []string
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		for _, v := range versions {
			if m, ok := v.(map[string]any); ok && m["served"] == true {
				served = append(served, fmt.Sprint(m["name"]))
			}
		}
		stored, _, _ := unstructured.NestedStringSlice(crd.Object, "status", "storedVersions")
		report("crd "+name, true, fmt.Sprintf("served %s, stored %s", strings.Join(served, ","), strings.Join(stored, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(failed) > 0 {
		return fmt.Errorf("not healthy: %s (see: kubectl stash install)", strings.Join(failed, ", "))
	}
	return nil
}

// webhook sends a valid Repository through a server-side dry run: it reaches the admission
// webhook, and a changed object proves that the mutating one answered.
func (o *StatusOptions) webhook(ctx context.Context) (bool, string) {
	k := o.kube
	if _, err := k.core.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, controllerName, metav1.GetOptions{}); err != nil {
		return false, fmt.Sprintf("no ValidatingWebhookConfiguration %s: %s", controllerName, firstLine(err.Error()))
	}
	r := &v1alpha1.Repository{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.KindRepository},
		ObjectMeta: metav1.ObjectMeta{Name: "stash-status-" + utilrand.String(8), Namespace: k.namespace},
		Spec: v1alpha1.RepositorySpec{Backend: v1alpha1.Backend{StorageSecretName: "stash-status-check",
			GCS: &v1alpha1.GCSSpec{Bucket: "stash-status-check", Prefix: "/status/"}}},
	}
	u, err := toUnstructured(r)
	if err != nil {
		return false, err.Error()
	}
	got, err := k.dynamic.Resource(stashResource(v1alpha1.KindRepository)).Namespace(k.namespace).
		Create(ctx, u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err != nil {
		return false, "server-side dry run failed: " + firstLine(err.Error())
	}
	if p, _, _ := unstructured.NestedString(got.Object, "spec", "backend", "gcs", "prefix"); p != "status" {
		return false, "the dry run was not defaulted: the mutating webhook did not answer"
	}
	return true, fmt.Sprintf("admission dry run of a Repository in namespace %q passed", k.namespace)
}
