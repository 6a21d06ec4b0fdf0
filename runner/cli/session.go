package cli

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/hook"
	"stash.dev/redis/runner/session"
)

// clusterFlags are the flags of the in-cluster mode, where the runner reads its session
// from the Kubernetes API (in a Job made by the controller).
type clusterFlags struct {
	session        string
	pushgatewayURL string
	hookPod        string
}

func (f *clusterFlags) bind(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.session, "session", "", "in-cluster mode: run the session NAMESPACE/NAME, read its target and repository from the Kubernetes API and write the result into its status")
	cmd.Flags().StringVar(&f.pushgatewayURL, "pushgateway-url", "", "push the run's metrics to this Prometheus Pushgateway")
	cmd.Flags().StringVar(&f.hookPod, "hook-pod", "", "in-cluster mode: the Pod of the target that the session's exec hooks run in (set by the controller)")
}

// splitName parses NAMESPACE/NAME.
func splitName(s, flag string) (string, string, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" {
		return "", "", fmt.Errorf("%s must be NAMESPACE/NAME, got %q", flag, s)
	}
	return ns, name, nil
}

// kubeClient connects to the API server: in-cluster config in a Pod, or $KUBECONFIG.
func kubeClient() (client.Client, error) {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("connect to kubernetes: %w", err)
	}
	return newClient(cfg)
}

func newClient(cfg *rest.Config) (client.Client, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, fmt.Errorf("create kubernetes client: %w", err)
	}
	return c, nil
}

func (f *clusterFlags) options(g *global) session.Options {
	host, _ := os.Hostname()
	return session.Options{Log: g.ErrOut, ProgressInterval: g.progressInterval, PushgatewayURL: f.pushgatewayURL, Hostname: host, RunnerVersion: g.version}
}

// sessionOptions are the options of a session run, with what its exec hooks need when the
// controller named a Pod for them.
func (f *clusterFlags) sessionOptions(g *global) (session.Options, error) {
	o := f.options(g)
	if f.hookPod == "" {
		return o, nil
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return o, fmt.Errorf("connect to kubernetes: %w", err)
	}
	exec, err := hook.NewPodExec(cfg)
	if err != nil {
		return o, err
	}
	o.Hooks = session.HookOptions{Pod: f.hookPod, Exec: exec}
	return o, nil
}

func (f *clusterFlags) runBackup(ctx context.Context, g *global) error {
	return withObject("--session", f.session, func(c client.Client, ns, name string) error {
		o, err := f.sessionOptions(g)
		if err != nil {
			return err
		}
		return session.RunBackup(ctx, c, ns, name, o)
	})
}

func (f *clusterFlags) runRestore(ctx context.Context, g *global) error {
	return withObject("--session", f.session, func(c client.Client, ns, name string) error {
		o, err := f.sessionOptions(g)
		if err != nil {
			return err
		}
		return session.RunRestore(ctx, c, ns, name, o)
	})
}

func newTriggerCommand(g *global) *cobra.Command {
	var bc string
	var force bool
	cmd := &cobra.Command{
		Use:   "trigger --backupconfiguration NAMESPACE/NAME",
		Short: "Create a BackupSession of a BackupConfiguration (what its CronJob runs at each tick)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withObject("--backupconfiguration", bc, func(c client.Client, ns, name string) error {
				s, err := session.Trigger(cmd.Context(), c, ns, name, force)
				if err != nil {
					return err
				}
				if s == nil {
					fmt.Fprintf(g.Out, "BackupConfiguration %s/%s is paused: no session created\n", ns, name)
					return nil
				}
				fmt.Fprintf(g.Out, "backupsession/%s created\n", s.Name)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&bc, "backupconfiguration", "", "the BackupConfiguration, as NAMESPACE/NAME")
	cmd.Flags().BoolVar(&force, "force", false, "create a session even when the BackupConfiguration is paused")
	return cmd
}

// withObject parses the in-cluster flag's NAMESPACE/NAME value, connects to the API server and
// runs run.
func withObject(flag, value string, run func(c client.Client, ns, name string) error) error {
	ns, name, err := splitName(value, flag)
	if err != nil {
		return err
	}
	c, err := kubeClient()
	if err != nil {
		return err
	}
	return run(c, ns, name)
}

// newContinuousCommand is the in-cluster follower that the Deployment of a BackupConfiguration
// with spec.continuous runs; `follow` is the same outside a cluster.
func newContinuousCommand(g *global) *cobra.Command {
	var f clusterFlags
	var bc string
	cmd := &cobra.Command{
		Use:   "continuous --backupconfiguration NAMESPACE/NAME",
		Short: "In-cluster continuous backup: follow a BackupConfiguration's target into its repository's journal and report the window in its status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withObject("--backupconfiguration", bc, func(c client.Client, ns, name string) error {
				return session.RunContinuous(cmd.Context(), c, ns, name, f.options(g))
			})
		},
	}
	cmd.Flags().StringVar(&bc, "backupconfiguration", "", "the BackupConfiguration, as NAMESPACE/NAME")
	return cmd
}
