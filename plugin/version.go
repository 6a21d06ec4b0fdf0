package plugin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"stash.dev/redis/version"
)

// VersionOptions prints the plugin's version and, with --server, the API server's.
type VersionOptions struct {
	genericiooptions.IOStreams
	getter genericclioptions.RESTClientGetter
	server bool
}

// NewCmdVersion returns `kubectl stash version`.
func NewCmdVersion(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &VersionOptions{IOStreams: streams, getter: getter}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of kubectl stash",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().BoolVar(&o.server, "server", false, "also print the Kubernetes API server's version")
	return cmd
}

// Run prints the versions.
func (o *VersionOptions) Run(_ context.Context) error {
	fmt.Fprintf(o.Out, "kubectl-stash %s\n", version.Version)
	if !o.server {
		return nil
	}
	dc, err := o.getter.ToDiscoveryClient()
	if err != nil {
		return fmt.Errorf("connect to the cluster: %w", err)
	}
	v, err := dc.ServerVersion()
	if err != nil {
		return fmt.Errorf("get server version: %w", err)
	}
	fmt.Fprintf(o.Out, "kubernetes %s\n", v.GitVersion)
	return nil
}
