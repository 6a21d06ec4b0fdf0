// Package plugin implements `kubectl stash`: one file per noun, each command an Options
// struct with Complete, Validate and Run, in the manner of kubectl's own commands.
package plugin

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// NewCmdStash returns the root command. Its persistent flags are kubectl's own (-n,
// --context, --kubeconfig, ...), since kubectl hands every flag after the plugin name to us.
func NewCmdStash(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	cmd := &cobra.Command{
		Use: "stash",
		// Usage lines then read "kubectl stash ...", as kubectl plugins should.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl stash"},
		Short:       "Back up and restore Redis on Kubernetes",
		Long: `kubectl stash creates, checks and follows backups and restores of Redis.

Install, then back up on a schedule and restore:
  kubectl stash install
  kubectl stash create secret storage gcs-secret --from-env -n db
  kubectl stash create repository gcs-prod --provider gcs --bucket backups --secret gcs-secret -n db
  kubectl stash create backupconfig nightly --target-appbinding redis --repo gcs-prod --schedule "0 2 * * *" --keep-last 7 -n db
  kubectl stash backup trigger nightly --wait -n db
  kubectl stash snapshots list gcs-prod -n db
  kubectl stash restore gcs-prod --snapshot latest --to appbinding/redis --wait -n db

Validate manifests offline, exactly as the cluster's admission webhook would:
  kubectl stash validate -f backup/`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	flags.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(NewCmdValidate(flags, streams))
	cmd.AddCommand(NewCmdCreate(flags, streams))
	cmd.AddCommand(NewCmdBackup(flags, streams))
	cmd.AddCommand(NewCmdRestore(flags, streams))
	cmd.AddCommand(NewCmdSnapshots(flags, streams))
	cmd.AddCommand(NewCmdCheck(flags, streams))
	cmd.AddCommand(NewCmdInstall(flags, streams))
	cmd.AddCommand(NewCmdUninstall(flags, streams))
	cmd.AddCommand(NewCmdStatus(flags, streams))
	cmd.AddCommand(NewCmdConvert(flags, streams))
	cmd.AddCommand(NewCmdVersion(flags, streams))
	return cmd
}

// runE wires an Options value's Complete, Validate and Run into cobra.
func runE(o interface {
	Complete(*cobra.Command, []string) error
	Validate() error
	Run(context.Context) error
}) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(cmd, args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return err
		}
		return o.Run(cmd.Context())
	}
}

// clusterCommand is what the commands that work in the cluster share: the kubeconfig, the
// object named by the first argument, if any, and the connection. Embedded in an Options, it
// gives it its Complete.
type clusterCommand struct {
	getter genericclioptions.RESTClientGetter
	name   string
	kube   *kube
}

// Complete takes the object's name from the first argument and connects to the cluster.
func (c *clusterCommand) Complete(_ *cobra.Command, args []string) (err error) {
	if len(args) > 0 {
		c.name = args[0]
	}
	c.kube, err = newKube(c.getter)
	return err
}
