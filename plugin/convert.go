package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	sigsjson "sigs.k8s.io/json"

	"stash.dev/redis/api/v1alpha1"
)

// stashGroup is the API group of Stash (stash.appscode.com), which convert reads.
const stashGroup = "stash.appscode.com"

// ConvertOptions turns Stash manifests into stash.dev ones.
type ConvertOptions struct {
	genericiooptions.IOStreams
	filenames []string
	output    string
}

// NewCmdConvert returns `kubectl stash convert`.
func NewCmdConvert(_ genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ConvertOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "convert -f FILE|DIR|-",
		Short: "Convert Stash (stash.appscode.com) Repository, BackupConfiguration and RestoreSession YAML into stash.dev",
		Long: `Convert reads Stash's v1alpha1 Repository and v1beta1 BackupConfiguration and RestoreSession and
prints the stash.dev/v1alpha1 equivalents: the backend (gcs, s3, azure, local), the AppBinding
target, retentionPolicy, schedule, paused, backupHistoryLimit, timeOut, retryConfig, task and
the runtime settings carry over; a RestoreSession's rules[].snapshots[0] becomes its snapshot.
Fields that only Stash has are dropped with a warning on standard error. Other kinds (Secrets,
AppBindings, ...) are printed unchanged. The result is validated like kubectl stash validate.`,
		Example: `  kubectl stash convert -f stash/ > stash-dev.yaml
  kubectl stash convert -f backup.yaml | kubectl apply -f -`,
		Args: cobra.NoArgs,
		RunE: runE(o),
	}
	cmd.Flags().StringSliceVarP(&o.filenames, "filename", "f", nil, "files or directories to convert; - reads standard input")
	cmd.Flags().StringVarP(&o.output, "output", "o", "yaml", "output format: yaml or json")
	return cmd
}

// Complete has nothing to do.
func (o *ConvertOptions) Complete(_ *cobra.Command, _ []string) error { return nil }

// Validate checks the flags.
func (o *ConvertOptions) Validate() error {
	if err := requireInput(o.filenames); err != nil {
		return err
	}
	if o.output != "yaml" && o.output != "json" {
		return fmt.Errorf("unknown output format %q: use yaml or json", o.output)
	}
	return nil
}

// Run converts every document.
func (o *ConvertOptions) Run(_ context.Context) error {
	files, err := manifestFiles(o.filenames)
	if err != nil {
		return err
	}
	var printer printers.ResourcePrinter = &printers.YAMLPrinter{}
	if o.output == "json" {
		printer = &printers.JSONPrinter{}
	}
	var invalid []string
	for _, f := range files {
		var r io.Reader = o.In
		if f != "-" {
			fh, err := os.Open(f)
			if err != nil {
				return fmt.Errorf("read %s: %w", f, err)
			}
			defer fh.Close()
			r = fh
		}
		docs, err := splitDocuments(f, r)
		if err != nil {
			return err
		}
		for _, d := range docs {
			j, err := d.toJSON()
			if err != nil {
				return fmt.Errorf("%s:%d: %w", d.file, d.line, err)
			}
			obj, warnings, err := convertDocument(j)
			where := fmt.Sprintf("%s:%d", d.file, d.line)
			for _, w := range warnings {
				fmt.Fprintf(o.ErrOut, "Warning: %s: %s\n", where, w)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			if obj == nil {
				continue
			}
			if so, ok := obj.(stashObject); ok {
				check := so.DeepCopyObject().(stashObject)
				check.Default()
				if errs := check.Validate(); len(errs) > 0 {
					invalid = append(invalid, fmt.Sprintf("%s: %s %q: %v", where, obj.GetObjectKind().GroupVersionKind().Kind, so.GetName(), errs.ToAggregate()))
				}
			}
			if err := printer.PrintObj(obj, o.Out); err != nil {
				return err
			}
		}
	}
	if len(invalid) > 0 {
		return fmt.Errorf("converted objects are invalid (fix them before applying; see: kubectl stash validate -f FILE):\n  %s", strings.Join(invalid, "\n  "))
	}
	return nil
}

// convertDocument converts one Stash object; other kinds come back unchanged, and Stash
// kinds without an equivalent are dropped with a warning.
func convertDocument(data []byte) (runtime.Object, []string, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		return nil, nil, err
	}
	gv, kind := u.GroupVersionKind().GroupVersion(), u.GetKind()
	if gv.Group != stashGroup {
		return u, nil, nil
	}
	meta := convertMeta(u)
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	c := &converter{}
	var obj runtime.Object
	switch {
	case kind == v1alpha1.KindRepository && gv.Version == "v1alpha1":
		r := &v1alpha1.Repository{ObjectMeta: meta}
		r.APIVersion, r.Kind = v1alpha1.GroupVersion.String(), kind
		c.decode(spec, "spec", &r.Spec)
		obj = r
	case kind == v1alpha1.KindBackupConfiguration && gv.Version == "v1beta1":
		if d, _ := spec["driver"].(string); d != "" && d != "Restic" {
			return nil, nil, fmt.Errorf("BackupConfiguration %q uses driver %s: only dump backups (Restic) convert", u.GetName(), d)
		}
		delete(spec, "driver")
		c.target(spec, u.GetNamespace())
		c.runtimeSettings(spec)
		c.hooks(spec, u.GetName(), u.GetNamespace())
		b := &v1alpha1.BackupConfiguration{ObjectMeta: meta}
		b.APIVersion, b.Kind = v1alpha1.GroupVersion.String(), kind
		c.decode(spec, "spec", &b.Spec)
		obj = b
	case kind == v1alpha1.KindRestoreSession && gv.Version == "v1beta1":
		delete(spec, "driver")
		c.target(spec, u.GetNamespace())
		c.runtimeSettings(spec)
		c.rules(spec)
		c.hooks(spec, u.GetName(), u.GetNamespace())
		r := &v1alpha1.RestoreSession{ObjectMeta: meta}
		r.APIVersion, r.Kind = v1alpha1.GroupVersion.String(), kind
		c.decode(spec, "spec", &r.Spec)
		obj = r
	default:
		return nil, []string{fmt.Sprintf("%s %s/%s %q has no stash.dev equivalent: dropped", gv.Group, gv.Version, kind, u.GetName())}, nil
	}
	return obj, c.warnings, c.err
}

// convertMeta keeps name, namespace, labels and annotations; the rest belongs to the old object.
func convertMeta(u *unstructured.Unstructured) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: u.GetName(), Namespace: u.GetNamespace(), Labels: u.GetLabels(), Annotations: u.GetAnnotations()}
	delete(m.Annotations, "kubectl.kubernetes.io/last-applied-configuration")
	if len(m.Annotations) == 0 {
		m.Annotations = nil
	}
	return m
}

// converter collects warnings about dropped fields.
type converter struct {
	warnings []string
	err      error
}

func (c *converter) drop(path, why string) {
	c.warnings = append(c.warnings, fmt.Sprintf("dropped %s: %s", path, why))
}

// decode decodes a Stash map into our type; fields ours lacks become warnings.
func (c *converter) decode(m map[string]any, path string, out any) {
	data, err := json.Marshal(m)
	if err != nil {
		c.err = err
		return
	}
	strict, err := sigsjson.UnmarshalStrict(data, out)
	if err != nil {
		c.err = fmt.Errorf("convert %s: %w", path, err)
		return
	}
	for _, e := range strict {
		msg := e.Error()
		if f, ok := strings.CutPrefix(msg, `unknown field "`); ok {
			c.drop(path+"."+strings.TrimSuffix(f, `"`), "Stash-only field")
			continue
		}
		c.warnings = append(c.warnings, path+": "+msg)
	}
}

// target keeps target.ref's apiVersion, kind and name.
func (c *converter) target(spec map[string]any, namespace string) {
	t, ok := spec["target"].(map[string]any)
	if !ok {
		return
	}
	for k := range t {
		if k != "ref" {
			c.drop("spec.target."+k, "stash.dev backs up the whole Redis named by target.ref")
			delete(t, k)
		}
	}
	if ref, ok := t["ref"].(map[string]any); ok {
		if ns, _ := ref["namespace"].(string); ns != "" && ns != namespace {
			c.warnings = append(c.warnings, fmt.Sprintf("spec.target.ref.namespace %q: a stash.dev target must be in the object's namespace %q", ns, namespace))
		}
		delete(ref, "namespace")
	}
}

// runtimeSettings flattens Stash's runtimeSettings.pod and .container.
func (c *converter) runtimeSettings(spec map[string]any) {
	rs, ok := spec["runtimeSettings"].(map[string]any)
	if !ok {
		return
	}
	out := map[string]any{}
	if pod, ok := rs["pod"].(map[string]any); ok {
		for k, v := range pod {
			switch k {
			case "nodeSelector", "tolerations", "securityContext", "serviceAccountName":
				out[k] = v
			default:
				c.drop("spec.runtimeSettings.pod."+k, "not supported by stash.dev")
			}
		}
	}
	if ctr, ok := rs["container"].(map[string]any); ok {
		for k, v := range ctr {
			if k == "resources" {
				out[k] = v
			} else {
				c.drop("spec.runtimeSettings.container."+k, "not supported by stash.dev")
			}
		}
	}
	if len(out) == 0 {
		delete(spec, "runtimeSettings")
		return
	}
	spec["runtimeSettings"] = out
}

// rules turns rules[0].snapshots[0] into snapshot.
func (c *converter) rules(spec map[string]any) {
	rules, _ := spec["rules"].([]any)
	delete(spec, "rules")
	spec["snapshot"] = v1alpha1.SnapshotLatest
	if len(rules) == 0 {
		return
	}
	if len(rules) > 1 {
		c.drop("spec.rules[1:]", "a stash.dev RestoreSession restores one snapshot: the first rule's")
	}
	rule, _ := rules[0].(map[string]any)
	for k := range rule {
		if k != "snapshots" {
			c.drop("spec.rules[0]."+k, "a Redis has one host")
		}
	}
	snaps, _ := rule["snapshots"].([]any)
	if len(snaps) > 1 {
		c.drop("spec.rules[0].snapshots[1:]", "a stash.dev RestoreSession restores one snapshot")
	}
	if len(snaps) > 0 {
		if s, _ := snaps[0].(string); s != "" {
			spec["snapshot"] = s
		}
	}
}
