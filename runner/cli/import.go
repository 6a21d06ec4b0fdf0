package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/progress"
	"stash.dev/redis/runner/repo"
)

// ImportOptions are the flags of `stash-runner import`.
type ImportOptions struct {
	g          *global
	file       string
	databases  []int
	resultFile string
}

func newImportCommand(g *global) *cobra.Command {
	o := &ImportOptions{g: g}
	cmd := &cobra.Command{
		Use:   "import FILE.rdb --repository URL",
		Short: "Turn an RDB file (a BGSAVE, a managed service's export) into a snapshot of the repository",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.file = args[0]
			return prepareThen(o.resultFile, "import", func() error { return o.Run(cmd.Context()) }, o.g.validateRepository)
		},
	}
	cmd.Flags().IntSliceVar(&o.databases, "databases", nil, "databases to import (default: all of the file)")
	cmd.Flags().StringVar(&o.resultFile, "result-file", "", "write the result as JSON to this file")
	return cmd
}

// Run reads the file into a new snapshot.
func (o *ImportOptions) Run(ctx context.Context) error {
	start := time.Now()
	res, err := o.run(ctx)
	return finish(o.resultFile, "import", start, res, err)
}

func (o *ImportOptions) run(ctx context.Context) (backup.Result, error) {
	f, err := os.Open(o.file)
	if err != nil {
		return backup.Result{}, err
	}
	defer f.Close()
	// A read of a stalled input (a pipe or FIFO whose writer stopped) ignores the context; a
	// deadline in the past ends it when ctx ends (SIGTERM), so the import stops at once.
	stopDeadline := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stopDeadline()
	host, _ := os.Hostname()
	res, err := withProgress(ctx, o.g, "import", orCreate, func(r *repo.Repository, pr *progress.Counter) (backup.Result, error) {
		return backup.Import(ctx, backup.ImportOptions{RDB: f, Source: o.file, Repository: r, Databases: o.databases,
			Hostname: host, RunnerVersion: o.g.version, Progress: pr})
	})
	if err != nil {
		return res, err
	}
	fmt.Fprintf(o.g.Out, "snapshot %s saved from %s: %d keys in %d databases (%d expired skipped), %d function libraries, %s stored, %s\n",
		res.SnapshotID, o.file, res.Keys, len(res.Databases), res.Skipped, res.Functions, v1alpha1.HumanBytes(res.StoredBytes), res.Duration.Round(time.Millisecond))
	return res, nil
}
