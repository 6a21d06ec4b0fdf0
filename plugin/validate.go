package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"stash.dev/redis/api/v1alpha1"
)

// Verdicts of `kubectl stash validate`.
const (
	VerdictValid   = "valid"
	VerdictInvalid = "invalid"
	VerdictSkipped = "skipped"
)

// ValidationResult is the verdict on one document; `-o json` prints a list of them.
type ValidationResult struct {
	File       string       `json:"file"`
	Document   int          `json:"document"`
	Line       int          `json:"line"`
	APIVersion string       `json:"apiVersion,omitempty"`
	Kind       string       `json:"kind,omitempty"`
	Namespace  string       `json:"namespace,omitempty"`
	Name       string       `json:"name,omitempty"`
	Verdict    string       `json:"verdict"`
	Errors     []FieldError `json:"errors,omitempty"`
	Warnings   []string     `json:"warnings,omitempty"`
	// Message explains a skipped document or one that could not be read at all.
	Message string `json:"message,omitempty"`
	// Server is true when the verdict includes the cluster's server-side dry run.
	Server bool `json:"server,omitempty"`

	object []byte // the document as JSON, for the dry run
}

// resourceOf maps our kinds to their resource names.
var resourceOf = map[string]string{
	v1alpha1.KindRepository:          "repositories",
	v1alpha1.KindBackupConfiguration: "backupconfigurations",
	v1alpha1.KindBackupSession:       "backupsessions",
	v1alpha1.KindRestoreSession:      "restoresessions",
}

// FieldError is one problem of a document, at a field path.
type FieldError struct {
	Field   string `json:"field"`
	Type    string `json:"type,omitempty"`
	Message string `json:"message"`
}

// ValidateOptions checks manifests with the API's own defaults and validation, offline,
// and optionally with a server-side dry run that passes through the admission webhook.
type ValidateOptions struct {
	genericiooptions.IOStreams
	getter genericclioptions.RESTClientGetter

	filenames  []string
	output     string
	serverSide bool

	dynamic   dynamic.Interface
	namespace string
	warnings  *warningCollector
}

// NewCmdValidate returns `kubectl stash validate`.
func NewCmdValidate(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ValidateOptions{IOStreams: streams, getter: getter}
	cmd := &cobra.Command{
		Use:   "validate -f FILE|DIR|-",
		Short: "Check stash.dev manifests offline, exactly as the admission webhook would",
		Long: `Validate applies the defaults and validation of the stash.dev API to every Repository,
BackupConfiguration, BackupSession and RestoreSession in the given files, the same functions
the cluster's admission webhook runs, so a CI pipeline gets the cluster's verdict before
anything is applied. Directories are read recursively (*.yaml, *.yml, *.json); other kinds
are skipped. Exits 1 when anything is invalid.

With --server-side, each object that passes also goes through a server-side dry run, which
adds the checks only the cluster can make (does the Repository exist, may this namespace
use it, does the storage Secret hold the keys the backend needs).`,
		Example: `  kubectl stash validate -f backup.yaml
  kubectl stash validate -f deploy/ -o json
  kustomize build overlays/prod | kubectl stash validate -f -
  kubectl stash validate -f backup.yaml --server-side -n db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(cmd, args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringSliceVarP(&o.filenames, "filename", "f", nil, "files or directories to validate; - reads standard input")
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "output format: empty for text, or json")
	cmd.Flags().BoolVar(&o.serverSide, "server-side", false, "also send each object through a server-side dry run (admission webhook included)")
	return cmd
}

// Complete connects to the cluster when --server-side asks for it.
func (o *ValidateOptions) Complete(_ *cobra.Command, _ []string) error {
	if !o.serverSide {
		return nil
	}
	cfg, err := o.getter.ToRESTConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	o.warnings = &warningCollector{}
	cfg.WarningHandler = o.warnings
	if o.dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	if o.namespace, _, err = o.getter.ToRawKubeConfigLoader().Namespace(); err != nil {
		return fmt.Errorf("read namespace: %w", err)
	}
	return nil
}

// Validate checks the flags.
func (o *ValidateOptions) Validate() error {
	if err := requireInput(o.filenames); err != nil {
		return err
	}
	if o.output != "" && o.output != "json" {
		return fmt.Errorf("unknown output format %q: use json or leave -o out", o.output)
	}
	return nil
}

// requireInput refuses a command that reads manifests (validate, convert) without a -f.
func requireInput(filenames []string) error {
	if len(filenames) == 0 {
		return errors.New("no input: give files or directories with -f (or -f - for standard input)")
	}
	return nil
}

// ErrInvalid is returned by Run when at least one document is invalid.
var ErrInvalid = errors.New("invalid manifests")

// Run validates every document and prints the verdicts.
func (o *ValidateOptions) Run(ctx context.Context) error {
	files, err := manifestFiles(o.filenames)
	if err != nil {
		return err
	}
	var results []ValidationResult
	for _, f := range files {
		docs, err := o.readDocuments(f)
		if err != nil {
			return err
		}
		for _, d := range docs {
			res := ValidateDocument(d)
			if o.serverSide {
				o.dryRun(ctx, res)
			}
			results = append(results, res...)
		}
	}
	if err := o.print(results); err != nil {
		return err
	}
	invalid := 0
	for _, r := range results {
		if r.Verdict == VerdictInvalid {
			invalid++
		}
	}
	if invalid > 0 {
		return fmt.Errorf("%w: %d of %d documents", ErrInvalid, invalid, len(results))
	}
	return nil
}

func (o *ValidateOptions) readDocuments(file string) ([]document, error) {
	var r io.Reader = o.In
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		defer f.Close()
		r = f
	}
	return splitDocuments(file, r)
}

func (o *ValidateOptions) print(results []ValidationResult) error {
	if o.output == "json" {
		if results == nil {
			results = []ValidationResult{}
		}
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(results)
	}
	for _, r := range results {
		where := fmt.Sprintf("%s:%d:", r.File, r.Document)
		what := r.Kind + "/" + r.Name
		if r.Kind == "" {
			what = "(no kind)"
		}
		for _, w := range r.Warnings {
			fmt.Fprintf(o.ErrOut, "%s %s: warning: %s\n", where, what, w)
		}
		switch {
		case r.Message != "" && len(r.Errors) == 0:
			fmt.Fprintf(o.Out, "%s %s: %s: %s\n", where, what, r.Verdict, r.Message)
		case len(r.Errors) > 0:
			for _, e := range r.Errors {
				fmt.Fprintf(o.Out, "%s %s: %s: %s\n", where, what, e.Field, e.Message)
			}
		default:
			fmt.Fprintf(o.Out, "%s %s: %s\n", where, what, r.Verdict)
		}
	}
	return nil
}

// ValidateDocument defaults and validates one document the way the admission webhook does.
// A List yields one result per item.
func ValidateDocument(d document) []ValidationResult {
	res := ValidationResult{File: d.file, Document: d.index, Line: d.line}
	data, err := d.toJSON()
	if err != nil {
		res.Verdict, res.Message = VerdictInvalid, "malformed YAML: "+err.Error()
		return []ValidationResult{res}
	}
	if msg := duplicateKeys(d); msg != "" {
		res.Verdict, res.Message = VerdictInvalid, msg
		return []ValidationResult{res}
	}
	var u unstructured.Unstructured
	if err := u.UnmarshalJSON(data); err != nil {
		res.Verdict, res.Message = VerdictInvalid, "not a Kubernetes object: "+err.Error()
		return []ValidationResult{res}
	}
	res.APIVersion, res.Kind, res.Name, res.Namespace = u.GetAPIVersion(), u.GetKind(), u.GetName(), u.GetNamespace()
	if res.Name == "" {
		res.Name = u.GetGenerateName()
	}
	if u.IsList() {
		var out []ValidationResult
		_ = u.EachListItem(func(item runtime.Object) error {
			b, err := item.(*unstructured.Unstructured).MarshalJSON()
			if err == nil {
				out = append(out, validateObject(res, b)...)
			}
			return nil
		})
		return out
	}
	return validateObject(res, data)
}

var duplicateKey = regexp.MustCompile(`line (\d+): key (".*") already set in map`)

// duplicateKeys names the keys a document (YAML or JSON) sets twice in one mapping, with their
// lines in the file, or returns "". Converting to JSON keeps only the last of them, which would
// pass here, while the API server's strict field validation (kubectl's default) refuses the
// object: validate refuses it too.
func duplicateKeys(d document) string {
	_, err := yaml.YAMLToJSONStrict(d.data)
	if err == nil {
		return ""
	}
	var dups []string
	for _, m := range duplicateKey.FindAllStringSubmatch(err.Error(), -1) {
		n, _ := strconv.Atoi(m[1])
		dups = append(dups, fmt.Sprintf("%s at line %d", m[2], n+d.line-1))
	}
	if len(dups) == 0 {
		return ""
	}
	return "duplicate key " + strings.Join(dups, ", duplicate key ") +
		" (the API server refuses a field given twice; keep one)"
}

func validateObject(res ValidationResult, data []byte) []ValidationResult {
	var tm metav1.TypeMeta
	var om struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	_ = json.Unmarshal(data, &tm)
	_ = json.Unmarshal(data, &om)
	res.APIVersion, res.Kind, res.Name, res.Namespace = tm.APIVersion, tm.Kind, om.Metadata.Name, om.Metadata.Namespace
	if res.Name == "" {
		res.Name = om.Metadata.GenerateName
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	switch {
	case tm.Kind == "" || tm.APIVersion == "":
		res.Verdict, res.Message = VerdictInvalid, "not a Kubernetes object: apiVersion and kind are required"
		return []ValidationResult{res}
	case err != nil:
		res.Verdict, res.Message = VerdictInvalid, fmt.Sprintf("malformed apiVersion %q", tm.APIVersion)
		return []ValidationResult{res}
	case gv.Group != v1alpha1.GroupVersion.Group:
		res.Verdict = VerdictSkipped
		if s := suggestKind(tm.Kind); strings.Contains(gv.Group, "stash") && s != "" {
			res.Verdict = VerdictInvalid
			res.Message = fmt.Sprintf("%s is the API of Stash (stash.appscode.com), not of kubectl stash; use apiVersion %s (kubectl stash convert turns Stash manifests into ours)", tm.APIVersion, v1alpha1.GroupVersion)
		} else {
			res.Message = fmt.Sprintf("not a %s object; nothing to check", v1alpha1.GroupVersion.Group)
		}
		return []ValidationResult{res}
	case gv.Version != v1alpha1.GroupVersion.Version:
		res.Verdict, res.Message = VerdictInvalid, fmt.Sprintf("unknown version %q of %s (known: %s)", gv.Version, gv.Group, v1alpha1.GroupVersion.Version)
		return []ValidationResult{res}
	}
	obj := newStashObject(tm.Kind)
	if obj == nil {
		res.Verdict = VerdictInvalid
		res.Message = fmt.Sprintf("unknown kind %q in %s (known kinds: %s)", tm.Kind, v1alpha1.GroupVersion, strings.Join(stashKinds, ", "))
		if s := suggestKind(tm.Kind); s != "" {
			res.Message = fmt.Sprintf("unknown kind %q in %s; did you mean %s? (known kinds: %s)", tm.Kind, v1alpha1.GroupVersion, s, strings.Join(stashKinds, ", "))
		}
		return []ValidationResult{res}
	}
	errs := decodeStrict(data, obj)
	if len(errs) == 0 {
		// The API server defaults before it validates; so do we.
		obj.Default()
		errs = obj.Validate()
	}
	res.Verdict, res.object = VerdictValid, data
	if len(errs) > 0 {
		res.Verdict = VerdictInvalid
		res.Errors = fieldErrors(errs)
	} else if w, ok := obj.(interface{ Warnings() []string }); ok {
		res.Warnings = append(res.Warnings, w.Warnings()...)
	}
	return []ValidationResult{res}
}

func fieldErrors(errs field.ErrorList) []FieldError {
	out := make([]FieldError, 0, len(errs))
	for _, e := range errs {
		msg := strings.TrimPrefix(e.Error(), e.Field+": ")
		out = append(out, FieldError{Field: e.Field, Type: string(e.Type), Message: msg})
	}
	return out
}

// dryRun sends an offline-valid document through a server-side dry run and folds the
// server's verdict and warnings into the result.
func (o *ValidateOptions) dryRun(ctx context.Context, res []ValidationResult) {
	for i := range res {
		r := &res[i]
		if r.Verdict != VerdictValid {
			continue
		}
		r.Server = true
		if err := o.dryRunOne(ctx, r); err != nil {
			r.Verdict = VerdictInvalid
			var se apierrors.APIStatus
			if errors.As(err, &se) && se.Status().Details != nil && len(se.Status().Details.Causes) > 0 {
				for _, c := range se.Status().Details.Causes {
					r.Errors = append(r.Errors, FieldError{Field: c.Field, Type: string(c.Type), Message: c.Message})
				}
			} else {
				r.Message = "server: " + err.Error()
			}
		}
		r.Warnings = append(r.Warnings, o.warnings.take()...)
	}
}

func (o *ValidateOptions) dryRunOne(ctx context.Context, r *ValidationResult) error {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(r.object); err != nil {
		return err
	}
	ns := u.GetNamespace()
	if ns == "" {
		ns = o.namespace
	}
	ri := o.dynamic.Resource(v1alpha1.GroupVersion.WithResource(resourceOf[u.GetKind()])).Namespace(ns)
	if u.GetName() == "" {
		_, err := ri.Create(ctx, u, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: FieldManager, FieldValidation: "Strict"})
		return err
	}
	_, err := ri.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: FieldManager, Force: true})
	return err
}

// FieldManager is the field manager of every object kubectl stash applies.
const FieldManager = "kubectl-stash"

// warningCollector keeps the warnings (from the admission webhook) of the last request.
type warningCollector struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningCollector) HandleWarningHeader(_ int, _ string, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
}

func (w *warningCollector) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}
