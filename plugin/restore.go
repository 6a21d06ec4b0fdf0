package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"stash.dev/redis/api/v1alpha1"
)

// RestoreOptions restores a snapshot of a Repository into a Redis, through a RestoreSession.
type RestoreOptions struct {
	genericiooptions.IOStreams
	getter   genericclioptions.RESTClientGetter
	spec     restoreFlags
	to       string
	wait     bool
	timeout  time.Duration
	interval time.Duration
	kube     *kube
}

// NewCmdRestore returns `kubectl stash restore`.
func NewCmdRestore(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &RestoreOptions{IOStreams: streams, getter: getter}
	cmd := &cobra.Command{
		Use:   "restore REPOSITORY --to TARGET [--snapshot latest|ID] [--wait]",
		Short: "Restore a snapshot into a Redis: create a RestoreSession and optionally follow it",
		Long: `Restore creates a RestoreSession that restores a snapshot of REPOSITORY into TARGET, which is
one of appbinding/NAME, service/NAME[:PORT] (or svc/...) and HOST:PORT. With --wait it follows the
session and exits non-zero with the reason when the restore fails.`,
		Example: `  kubectl stash restore gcs-prod --snapshot latest --to appbinding/sample-redis -n db --wait
  kubectl stash restore gcs-prod --snapshot 20261125T233500Z-3f9a1c --to svc/redis-copy:6379 --auth-secret redis-auth -n db`,
		Args:              cobra.ExactArgs(1),
		RunE:              runE(o),
		ValidArgsFunction: completeNames(getter, v1alpha1.KindRepository),
	}
	o.spec.addFlags(cmd)
	f := cmd.Flags()
	f.StringVar(&o.to, "to", "", "the Redis to restore into: appbinding/NAME, service/NAME[:PORT] or HOST:PORT")
	f.StringVar(&o.spec.target.mode, "mode", "", "Redis mode of a service or address target: standalone (default), cluster or sentinel")
	f.StringVar(&o.spec.target.authSecret, "auth-secret", "", "Secret with the Redis username and password of a service or address target")
	f.StringVar(&o.spec.name, "name", "", "name of the RestoreSession (default: generated from the repository)")
	f.BoolVarP(&o.wait, "wait", "w", false, "follow the session until it ends; exit non-zero when it fails")
	f.DurationVar(&o.timeout, "wait-timeout", 0, "with --wait, give up after this long (0: until the session ends)")
	f.DurationVar(&o.interval, "poll-interval", time.Second, "with --wait, how often to read the session")
	_ = f.MarkHidden("poll-interval")
	return cmd
}

// Complete parses the target and connects to the cluster.
func (o *RestoreOptions) Complete(_ *cobra.Command, args []string) (err error) {
	o.spec.repo = args[0]
	if o.spec.name == "" {
		prefix := o.spec.repo
		if max := v1alpha1.MaxRestoreSessionName - 6; len(prefix) > max {
			prefix = prefix[:max]
		}
		o.spec.generateName = prefix + "-"
	}
	if err := parseTarget(o.to, &o.spec.target); err != nil {
		return err
	}
	if o.kube, err = newKube(o.getter); err != nil {
		return err
	}
	o.spec.namespace = o.kube.namespace
	return nil
}

// parseTarget fills t from appbinding/NAME, service/NAME[:PORT], svc/NAME[:PORT] or HOST:PORT.
func parseTarget(to string, t *targetFlags) error {
	kind, name, ok := strings.Cut(to, "/")
	switch {
	case to == "":
		return errors.New("--to is required: appbinding/NAME, service/NAME[:PORT] or HOST:PORT")
	case ok && strings.EqualFold(kind, "appbinding"):
		t.appBinding = name
	case ok && (kind == "service" || kind == "svc"):
		t.service = name
	case !ok:
		t.address = to
	default:
		return fmt.Errorf("--to %q: use appbinding/NAME, service/NAME[:PORT] or HOST:PORT", to)
	}
	return nil
}

// Validate checks the flags.
func (o *RestoreOptions) Validate() error {
	if o.timeout < 0 || o.interval <= 0 {
		return errors.New("--wait-timeout and --poll-interval must be positive")
	}
	return nil
}

// Run creates the RestoreSession and, with --wait, follows it.
func (o *RestoreOptions) Run(ctx context.Context) error {
	k := o.kube
	var repo v1alpha1.Repository
	repoKube := *k
	if o.spec.repoNS != "" {
		repoKube.namespace = o.spec.repoNS
	}
	if err := repoKube.get(ctx, v1alpha1.KindRepository, o.spec.repo, &repo); err != nil {
		return repoKube.explain(err, v1alpha1.KindRepository, o.spec.repo, "kubectl get repositories.stash.dev -n "+repoKube.namespace)
	}
	rs, err := buildRestoreSession(o.spec)
	if err != nil {
		return err
	}
	rs.Default()
	if errs := rs.Validate(); len(errs) > 0 {
		return invalidError(rs, errs)
	}
	var created v1alpha1.RestoreSession
	if err := k.create(ctx, v1alpha1.KindRestoreSession, rs, &created); err != nil {
		return k.explain(err, v1alpha1.KindRestoreSession, "", "")
	}
	fmt.Fprintf(o.Out, "restoresession.stash.dev/%s created\n", created.Name)
	if !o.wait {
		return nil
	}
	return follow(ctx, o.Out, followOptions{
		kind: v1alpha1.KindRestoreSession, name: created.Name, ns: k.namespace, interval: o.interval, timeout: o.timeout,
		describe: fmt.Sprintf("kubectl describe restoresessions.stash.dev %s -n %s", created.Name, k.namespace),
		get: func(ctx context.Context) (sessionState, error) {
			var s v1alpha1.RestoreSession
			if err := k.get(ctx, v1alpha1.KindRestoreSession, created.Name, &s); err != nil {
				return sessionState{}, k.explain(err, v1alpha1.KindRestoreSession, created.Name, "")
			}
			return restoreState(&s), nil
		},
	})
}
