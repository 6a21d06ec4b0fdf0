package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/store"
)

// NewCmdSnapshots returns `kubectl stash snapshots`.
func NewCmdSnapshots(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "snapshots",
		Aliases: []string{"snapshot"},
		Short:   "List and delete the snapshots of a Repository",
	}
	cmd.AddCommand(NewCmdSnapshotsList(getter, streams))
	cmd.AddCommand(NewCmdSnapshotDelete(getter, streams))
	return cmd
}

// repositoryURL is the runner's URL of a Repository's backend as this machine reaches it:
// the API's own URL for object storage, and for a local backend its hostPath (the mountPath
// exists only inside the Jobs).
func repositoryURL(r *v1alpha1.Repository) (string, error) {
	b := &r.Spec.Backend
	switch {
	case b.Local != nil && b.Local.HostPath != nil:
		return (&url.URL{Scheme: "file", Path: path.Join(b.Local.HostPath.Path, b.Local.SubPath)}).String(), nil
	case b.Local != nil:
		return "", errors.New("a local repository on a volume other than hostPath is readable only inside the cluster")
	}
	if u := b.URL(); u != "" {
		return u, nil
	}
	return "", errors.New("the repository has no backend")
}

// repoAccess opens a Repository's backend with its storage Secret.
type repoAccess struct {
	kube *kube
	name string
	repo v1alpha1.Repository
}

// errNoAccess says that the backend cannot be read from here; the caller may fall back
// to what the cluster knows.
var errNoAccess = errors.New("cannot read the repository from here")

func (a *repoAccess) get(ctx context.Context) error {
	k := a.kube
	if err := k.get(ctx, v1alpha1.KindRepository, a.name, &a.repo); err != nil {
		return k.explain(err, v1alpha1.KindRepository, a.name, "kubectl get repositories.stash.dev -n "+k.namespace)
	}
	return nil
}

// openRepository reads the Repository name and opens it with its storage Secret: how every
// command reaches a repository's snapshots. The Repository is returned too, for a caller that
// falls back to what the cluster knows when the error wraps errNoAccess.
func openRepository(ctx context.Context, k *kube, name string) (*repo.Repository, *v1alpha1.Repository, error) {
	a := &repoAccess{kube: k, name: name}
	if err := a.get(ctx); err != nil {
		return nil, nil, err
	}
	r, err := a.open(ctx)
	return r, &a.repo, err
}

func (a *repoAccess) open(ctx context.Context) (*repo.Repository, error) {
	k := a.kube
	u, err := repositoryURL(&a.repo)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoAccess, err)
	}
	secretName := a.repo.Spec.Backend.StorageSecretName
	s, err := k.core.CoreV1().Secrets(k.namespace).Get(ctx, secretName, metav1.GetOptions{})
	switch {
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("%w: no permission to read storage Secret %q", errNoAccess, secretName)
	case err != nil:
		return nil, k.explain(err, "Secret", secretName, fmt.Sprintf("kubectl stash create secret storage %s -n %s", secretName, k.namespace))
	}
	env := map[string]string{}
	for key, v := range s.Data {
		env[key] = string(v)
	}
	var password string
	for _, key := range v1alpha1.PasswordSecretKeys {
		if password = env[key]; password != "" {
			break
		}
	}
	bucket, err := store.Open(ctx, u, env)
	if err != nil {
		return nil, fmt.Errorf("open repository %q: %w", a.name, err)
	}
	r, err := repo.Open(ctx, bucket, repo.Options{Password: password})
	if err != nil {
		bucket.Close()
		if errors.Is(err, repo.ErrNotInitialized) {
			return nil, fmt.Errorf("repository %q has no snapshots yet: the first backup initializes it (see: kubectl stash backup trigger BACKUPCONFIG -n %s)", a.name, k.namespace)
		}
		return nil, fmt.Errorf("open repository %q: %w", a.name, err)
	}
	return r, nil
}

// SnapshotsListOptions lists the snapshots of a Repository.
type SnapshotsListOptions struct {
	genericiooptions.IOStreams
	clusterCommand
	output string
}

// NewCmdSnapshotsList returns `kubectl stash snapshots list`.
func NewCmdSnapshotsList(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &SnapshotsListOptions{IOStreams: streams, clusterCommand: clusterCommand{getter: getter}}
	cmd := &cobra.Command{
		Use:     "list REPOSITORY",
		Aliases: []string{"ls"},
		Short:   "List the snapshots of a Repository",
		Long: `List reads the repository with its storage Secret, as the runner does. Without permission to
read the Secret (or for a backend this machine cannot reach), it shows what the cluster knows:
the Repository's status and the snapshots of the BackupSessions that wrote to it.`,
		Args:              cobra.ExactArgs(1),
		RunE:              runE(o),
		ValidArgsFunction: completeNames(getter, v1alpha1.KindRepository),
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "output format: empty for a table, or json")
	return cmd
}

// Validate checks -o.
func (o *SnapshotsListOptions) Validate() error {
	if o.output != "" && o.output != "json" {
		return fmt.Errorf("unknown output format %q: use json or leave -o out", o.output)
	}
	return nil
}

// Run lists the snapshots.
func (o *SnapshotsListOptions) Run(ctx context.Context) error {
	r, rp, err := openRepository(ctx, o.kube, o.name)
	if errors.Is(err, errNoAccess) {
		fmt.Fprintf(o.ErrOut, "Note: %v; showing what the cluster knows\n", err)
		return o.fromCluster(ctx, rp)
	}
	if err != nil {
		return err
	}
	defer r.Close()
	listing, err := r.ListAll(ctx)
	if err != nil {
		return fmt.Errorf("list snapshots of repository %q: %w", o.name, err)
	}
	all := listing.Manifests
	for _, d := range listing.Damaged {
		fmt.Fprintf(o.ErrOut, "Warning: snapshot %s is damaged and left out: %v (kubectl stash check %s shows it; kubectl stash snapshots delete %s %s removes it)\n",
			d.ID, d.Err, o.name, o.name, d.ID)
	}
	if o.output == "json" {
		if all == nil {
			all = []repo.Manifest{}
		}
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(all)
	}
	if len(all) == 0 {
		fmt.Fprintf(o.ErrOut, "No snapshots in repository %q\n", o.name)
		return nil
	}
	tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tKEYS\tDATABASES\tSIZE\tDURATION\tREDIS")
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		var dbs []string
		for _, db := range slices.Sorted(maps.Keys(m.Databases)) {
			dbs = append(dbs, fmt.Sprint(db))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", m.ID, m.Time.UTC().Format(time.RFC3339), m.Keys,
			strings.Join(dbs, ","), v1alpha1.HumanBytes(m.StoredBytes), m.Duration.Round(time.Millisecond), m.RedisVersion)
	}
	return tw.Flush()
}

// fromCluster prints the Repository's status and the snapshots recorded by BackupSessions.
func (o *SnapshotsListOptions) fromCluster(ctx context.Context, r *v1alpha1.Repository) error {
	k := o.kube
	var bcs v1alpha1.BackupConfigurationList
	if err := k.list(ctx, v1alpha1.KindBackupConfiguration, "", &bcs); err != nil {
		return k.explain(err, v1alpha1.KindBackupConfiguration, "", "")
	}
	uses := map[string]bool{}
	for _, bc := range bcs.Items {
		ns := bc.Spec.Repository.Namespace
		if bc.Spec.Repository.Name == r.Name && (ns == "" || ns == r.Namespace) {
			uses[bc.Name] = true
		}
	}
	var sessions v1alpha1.BackupSessionList
	if err := k.list(ctx, v1alpha1.KindBackupSession, "", &sessions); err != nil {
		return k.explain(err, v1alpha1.KindBackupSession, "", "")
	}
	var found []v1alpha1.BackupSession
	for _, s := range sessions.Items {
		if uses[s.Spec.Invoker.Name] && s.Status.Phase == v1alpha1.SessionSucceeded && s.Status.Snapshot != "" {
			found = append(found, s)
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Status.Snapshot > found[j].Status.Snapshot })
	if o.output == "json" {
		type entry struct {
			ID      string `json:"id"`
			Session string `json:"session"`
			Keys    int64  `json:"keys"`
			Bytes   int64  `json:"bytes"`
		}
		out := []entry{}
		for _, s := range found {
			out = append(out, entry{s.Status.Snapshot, s.Name, s.Status.Keys, s.Status.Bytes})
		}
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	st := r.Status
	fmt.Fprintf(o.Out, "Repository %s: %d snapshots, %s, last backup %s ago\n", r.Name, st.SnapshotCount, dash(st.TotalSize), ago(st.LastBackupTime, time.Now()))
	tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSESSION\tKEYS\tSIZE")
	for _, s := range found {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", s.Status.Snapshot, s.Name, s.Status.Keys, v1alpha1.HumanBytes(s.Status.Bytes))
	}
	return tw.Flush()
}

// SnapshotDeleteOptions deletes a snapshot from a Repository's backend.
type SnapshotDeleteOptions struct {
	genericiooptions.IOStreams
	clusterCommand
	ids []string
}

// NewCmdSnapshotDelete returns `kubectl stash snapshots delete`.
func NewCmdSnapshotDelete(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &SnapshotDeleteOptions{IOStreams: streams, clusterCommand: clusterCommand{getter: getter}}
	return &cobra.Command{
		Use:               "delete REPOSITORY SNAPSHOT_ID...",
		Aliases:           []string{"rm"},
		Short:             "Delete snapshots from a Repository (needs the storage Secret)",
		Args:              cobra.MinimumNArgs(2),
		RunE:              runE(o),
		ValidArgsFunction: completeNames(getter, v1alpha1.KindRepository),
	}
}

// Complete takes the snapshot ids that follow the Repository's name, then the name, and connects.
func (o *SnapshotDeleteOptions) Complete(cmd *cobra.Command, args []string) error {
	o.ids = args[1:]
	return o.clusterCommand.Complete(cmd, args)
}

// Validate checks the ids.
func (o *SnapshotDeleteOptions) Validate() error {
	for _, id := range o.ids {
		if !v1alpha1.SnapshotIDPattern.MatchString(id) {
			return fmt.Errorf("%q is not a snapshot id such as 20261125T233500Z-3f9a1c (see: kubectl stash snapshots list %s)", id, o.name)
		}
	}
	return nil
}

// Run deletes the snapshots.
func (o *SnapshotDeleteOptions) Run(ctx context.Context) error {
	r, _, err := openRepository(ctx, o.kube, o.name)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, id := range o.ids {
		if _, err := r.Manifest(ctx, id); err != nil {
			if errors.Is(err, repo.ErrSnapshotNotFound) {
				return fmt.Errorf("snapshot %q not found in repository %q (see: kubectl stash snapshots list %s -n %s)", id, o.name, o.name, o.kube.namespace)
			}
			// A damaged manifest is what a user deletes by id: named here, not refused.
			fmt.Fprintf(o.ErrOut, "Note: snapshot %s cannot be read (%v); deleting it as asked\n", id, err)
		}
		if err := r.Delete(ctx, id); err != nil {
			return fmt.Errorf("delete snapshot %q: %w", id, err)
		}
		fmt.Fprintf(o.Out, "snapshot %s deleted from repository %s\n", id, o.name)
	}
	return nil
}

// CheckOptions verifies a Repository's snapshots.
type CheckOptions struct {
	genericiooptions.IOStreams
	clusterCommand
	readData bool
}

// NewCmdCheck returns `kubectl stash check`.
func NewCmdCheck(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &CheckOptions{IOStreams: streams, clusterCommand: clusterCommand{getter: getter}}
	cmd := &cobra.Command{
		Use:               "check REPOSITORY [--read-data]",
		Short:             "Verify every snapshot's manifest and data object (needs the storage Secret)",
		Args:              cobra.ExactArgs(1),
		RunE:              runE(o),
		ValidArgsFunction: completeNames(getter, v1alpha1.KindRepository),
	}
	cmd.Flags().BoolVar(&o.readData, "read-data", false, "also download, decrypt and hash every snapshot")
	return cmd
}

// Validate has nothing to check.
func (o *CheckOptions) Validate() error { return nil }

// Run checks the repository.
func (o *CheckOptions) Run(ctx context.Context) error {
	r, _, err := openRepository(ctx, o.kube, o.name)
	if err != nil {
		return err
	}
	defer r.Close()
	res, err := r.Check(ctx, repo.CheckOptions{ReadData: o.readData})
	if err != nil {
		return fmt.Errorf("check repository %q: %w", o.name, err)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(o.Out, "problem: %s\n", p)
	}
	for _, orphan := range res.Orphans {
		fmt.Fprintf(o.Out, "orphan: %s (an incomplete snapshot of a failed backup; invisible to restores)\n", orphan)
	}
	if len(res.Problems) > 0 {
		return fmt.Errorf("repository %q has %d problems in %d snapshots", o.name, len(res.Problems), res.Snapshots)
	}
	what := "manifests and object sizes"
	if o.readData {
		what = "manifests and all data"
	}
	fmt.Fprintf(o.Out, "repository %s is healthy: %d snapshots (%s verified)\n", o.name, res.Snapshots, what)
	return nil
}
