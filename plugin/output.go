package plugin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
)

// Values of --dry-run.
const (
	dryRunNone   = "none"
	dryRunClient = "client"
	dryRunServer = "server"
)

// writeOptions are the output and submission flags shared by the commands that write one
// object: -o prints instead of submitting, --dry-run=client prints, --dry-run=server asks
// the API server (and so the admission webhook) without persisting.
type writeOptions struct {
	genericiooptions.IOStreams
	getter     genericclioptions.RESTClientGetter
	printFlags *genericclioptions.PrintFlags
	dryRun     string

	ns   string
	kube *kube // nil when the object is only printed
	// printer is made once: the YAML printer separates the objects of one command
	// (install prints many) with "---" only when the same printer prints them all.
	printer printers.ResourcePrinter
}

func newWriteOptions(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams, operation string) writeOptions {
	return writeOptions{IOStreams: streams, getter: getter, printFlags: genericclioptions.NewPrintFlags(operation), dryRun: dryRunNone}
}

func (w *writeOptions) addFlags(cmd *cobra.Command) {
	w.printFlags.AddFlags(cmd)
	cmd.Flags().StringVar(&w.dryRun, "dry-run", dryRunNone, `"client" prints the object without sending it, "server" sends it for validation (admission webhook included) without persisting it`)
	cmd.Flags().Lookup("dry-run").NoOptDefVal = dryRunClient
}

// noteRedacted heads a Secret printed as YAML with redactedNote.
func (w *writeOptions) noteRedacted(obj runtime.Object) {
	s, ok := obj.(*corev1.Secret)
	if !ok || *w.printFlags.OutputFormat != "yaml" {
		return
	}
	for k := range s.Data {
		if secretKeys[k] {
			fmt.Fprint(w.Out, redactedNote)
			return
		}
	}
}

// localOnly reports whether the object is printed and not sent.
func (w *writeOptions) localOnly() bool {
	if w.dryRun == dryRunClient {
		return true
	}
	out := *w.printFlags.OutputFormat
	return w.dryRun != dryRunServer && out != "" && out != "name"
}

// complete connects to the cluster (only the namespace is read for local output).
func (w *writeOptions) complete() error {
	switch w.dryRun {
	case dryRunNone, dryRunClient, dryRunServer:
	default:
		return fmt.Errorf(`invalid --dry-run %q: use "none", "client" or "server"`, w.dryRun)
	}
	template := map[string]string{dryRunClient: "%s (dry run)", dryRunServer: "%s (server dry run)"}[w.dryRun]
	if template != "" {
		if err := w.printFlags.Complete(template); err != nil {
			return err
		}
	}
	ns, _, err := w.getter.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	w.ns = ns
	if w.localOnly() {
		return nil // printing needs no cluster
	}
	w.kube, err = newKube(w.getter)
	return err
}

// completeNamed is the Complete of the commands that create one named object: the name from
// the only argument, then the output flags and the namespace.
func (w *writeOptions) completeNamed(args []string, name, namespace *string) error {
	*name = args[0]
	if err := w.complete(); err != nil {
		return err
	}
	*namespace = w.namespace()
	return nil
}

// namespace is the namespace of the command: -n, or the kubeconfig context's.
func (w *writeOptions) namespace() string { return w.ns }

// emit defaults and validates obj with the API's own functions, then prints or applies it.
func (w *writeOptions) emit(ctx context.Context, obj runtime.Object, next string) error {
	if so, ok := obj.(stashObject); ok {
		so.Default()
		if errs := so.Validate(); len(errs) > 0 {
			return invalidError(obj, errs)
		}
	}
	if w.printer == nil {
		p, err := w.printFlags.ToPrinter()
		if err != nil {
			return err
		}
		w.printer = p
	}
	printer := w.printer
	if w.localOnly() {
		w.noteRedacted(obj)
		return printer.PrintObj(printable(obj), w.Out)
	}
	applied, err := w.kube.apply(ctx, obj, w.dryRun == dryRunServer)
	if err != nil {
		kind := obj.GetObjectKind().GroupVersionKind().Kind
		name := ""
		if m, ok := obj.(interface{ GetName() string }); ok {
			name = m.GetName()
		}
		return w.kube.explain(err, kind, name, next)
	}
	if _, secret := obj.(*corev1.Secret); secret {
		w.noteRedacted(obj)
		return printer.PrintObj(printable(obj), w.Out) // never the data the server echoes
	}
	return printer.PrintObj(applied, w.Out)
}

// invalidError prints field errors on one line each, as the API server would.
func invalidError(obj runtime.Object, errs field.ErrorList) error {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	name := ""
	if m, ok := obj.(interface{ GetName() string }); ok {
		name = m.GetName()
	}
	msg := fmt.Sprintf("%s %q is invalid:", kind, name)
	for _, e := range errs {
		msg += "\n  " + e.Error()
	}
	return fmt.Errorf("%s", msg)
}
