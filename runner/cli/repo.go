package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/version"
)

func newSnapshotsCommand(g *global) *cobra.Command {
	var asJSON, windows bool
	cmd := &cobra.Command{
		Use:   "snapshots --repository URL",
		Short: "List the snapshots in a repository",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var all []repo.Manifest
			var damaged []repo.Damaged
			var wins []journal.Window
			var gaps []journal.Gap
			err := g.useRepository(cmd.Context(), existing, func(r *repo.Repository) (err error) {
				listing, err := r.ListAll(cmd.Context())
				if err != nil {
					return err
				}
				all, damaged = listing.Manifests, listing.Damaged
				wins, gaps, err = journal.Windows(cmd.Context(), r)
				return err
			})
			if err != nil {
				return err
			}
			if windows {
				if asJSON {
					enc := json.NewEncoder(g.Out)
					enc.SetIndent("", "  ")
					if wins == nil {
						wins = []journal.Window{}
					}
					if gaps == nil {
						gaps = []journal.Gap{}
					}
					return enc.Encode(struct {
						Windows []journal.Window `json:"windows"`
						Gaps    []journal.Gap    `json:"gaps"`
					}{wins, gaps})
				}
				printWindows(g.Out, wins, gaps)
				return nil
			}
			if asJSON {
				enc := json.NewEncoder(g.Out)
				enc.SetIndent("", "  ")
				if all == nil {
					all = []repo.Manifest{}
				}
				return enc.Encode(all)
			}
			printSnapshots(g.Out, all)
			printDamaged(g.ErrOut, damaged)
			if len(wins) > 0 {
				fmt.Fprintln(g.Out)
				printWindows(g.Out, wins, gaps)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the manifests as JSON (with --windows: the windows and gaps)")
	cmd.Flags().BoolVar(&windows, "windows", false, "print only the recoverable windows of the journal chains (continuous backup) and the gaps between them")
	return cmd
}

// printWindows lists, per journal chain, what a restore to a point in time can reach: from the
// base's instant and offset to the last closed segment's; a stretch between two chains that
// neither holds is a line of its own, so that a gap is never hidden.
func printWindows(w io.Writer, wins []journal.Window, gaps []journal.Gap) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHAIN\tFROM\tTO\tOFFSETS\tSEGMENTS\tCOMMANDS\tREPLID")
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	tsNano := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }
	for _, win := range wins {
		for _, g := range gaps {
			if g.Before == win.Chain {
				fmt.Fprintf(tw, "gap\t%s\t%s\t%d-%d\t-\t-\t%.8s-%.8s (not recoverable: the source's commands in between are not in the repository)\n",
					ts(g.From), ts(g.To), g.FromOffset, g.ToOffset, g.FromReplID, g.ToReplID)
			}
		}
		replID := fmt.Sprintf("%.8s", win.ReplID)
		if win.EndReplID != win.ReplID {
			replID += "-" + fmt.Sprintf("%.8s", win.EndReplID)
		}
		if win.Problem != "" {
			replID += " (not restorable: " + win.Problem + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d-%d\t%d\t%d\t%s\n", win.Chain, ts(win.Start), ts(win.End),
			win.StartOffset, win.EndOffset, win.Segments, win.Commands, replID)
		for _, st := range win.Inexact {
			fmt.Fprintf(tw, "inexact\t%s\t%s\t%d-%d\t-\t%d\t(a --to-time in this stretch is refused: no source marks place these writes to %s)\n",
				tsNano(st.From), tsNano(st.To), st.FromOffset, st.ToOffset, st.Writes, journal.Precision)
		}
		if h := win.Hole; h != nil {
			fmt.Fprintf(tw, "hole\t%s\t%s\t%d-%d\t%d after it\t-\t(not recoverable: a segment of chain %s is missing; the window above ends before it)\n",
				ts(h.From), ts(h.To), h.FromOffset, h.ToOffset, h.Beyond, win.Chain)
		}
	}
	tw.Flush()
}

// printDamaged names every snapshot whose manifest cannot be read, and how to remove it: the
// listing went around it, and it must not go unnoticed.
func printDamaged(w io.Writer, damaged []repo.Damaged) {
	for _, d := range damaged {
		fmt.Fprintf(w, "warning: snapshot %s is damaged and left out: %v (stash-runner check shows it; stash-runner forget --id %s removes it)\n", d.ID, d.Err, d.ID)
	}
}

func printSnapshots(w io.Writer, all []repo.Manifest) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tKEYS\tDATABASES\tSIZE\tSOURCE\tREDIS")
	for _, m := range all {
		dbs := make([]string, 0, len(m.Databases))
		for _, db := range slices.Sorted(maps.Keys(m.Databases)) {
			dbs = append(dbs, fmt.Sprint(db))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", m.ID, m.Time.Format(time.RFC3339), m.Keys,
			strings.Join(dbs, ","), v1alpha1.HumanBytes(m.StoredBytes), m.Source, m.RedisVersion)
	}
	tw.Flush()
}

func newForgetCommand(g *global) *cobra.Command {
	var rp v1alpha1.RetentionPolicy
	rules := rp.Rules()
	keep := make([]int32, len(rules))
	var dryRun bool
	var ids []string
	var within time.Duration
	cmd := &cobra.Command{
		Use:   "forget --repository URL --keep-last N [--keep-daily N ...] [--dry-run] | --id ID...",
		Short: "Remove snapshots that a retention policy does not keep (restic semantics)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := g.validateRepository(); err != nil {
				return err
			}
			if len(ids) > 0 {
				for i, r := range rules {
					if keep[i] != 0 {
						return fmt.Errorf("give either --id or --%s, not both", r.Flag)
					}
				}
				return g.useRepository(cmd.Context(), existing, func(r *repo.Repository) error {
					if dryRun {
						for _, id := range ids {
							fmt.Fprintf(g.Out, "would remove %s\n", id)
						}
						return nil
					}
					if err := r.Remove(cmd.Context(), ids); err != nil {
						return err
					}
					for _, id := range ids {
						fmt.Fprintf(g.Out, "removed %s\n", id)
					}
					return nil
				})
			}
			for i, r := range rules {
				if msg := r.CheckValue(keep[i]); msg != "" {
					return fmt.Errorf("--%s %d: %s (forget refuses a policy that would keep nothing)", r.Flag, keep[i], msg)
				}
				if keep[i] != 0 {
					r.Set(keep[i])
				}
			}
			p, err := repo.PolicyOf(&rp)
			if err != nil {
				return err
			}
			if within != 0 {
				if !p.Empty() {
					return errors.New("--keep-within-window keeps the journal's window; run it apart from the --keep-* rules of snapshots")
				}
				if within < 0 {
					return fmt.Errorf("--keep-within-window %s: must be positive", within)
				}
				return g.useRepository(cmd.Context(), existing, func(r *repo.Repository) error {
					res, err := journal.KeepWithin(cmd.Context(), r, within, time.Now(), dryRun)
					for _, c := range res.Kept {
						fmt.Fprintf(g.Out, "keep   journal chain %s\n", c)
					}
					for _, c := range res.Removed {
						fmt.Fprintf(g.Out, "remove journal chain %s (and its base)\n", c)
					}
					if err != nil {
						return err
					}
					verb := "removed"
					if dryRun {
						verb = "would remove"
					}
					fmt.Fprintf(g.Out, "the window from %s on is kept: %d chains, %s; %s %d chains\n",
						res.Since.UTC().Format(time.RFC3339), len(res.Kept), v1alpha1.HumanBytes(res.KeptBytes), verb, len(res.Removed))
					return nil
				})
			}
			if p.Empty() {
				return errors.New("give at least one --keep-* flag; forget refuses to remove every snapshot")
			}
			var res repo.ForgetResult
			err = g.useRepository(cmd.Context(), existing, func(r *repo.Repository) (err error) {
				res, err = r.Forget(cmd.Context(), p, dryRun)
				return err
			})
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, m := range res.Keep {
				fmt.Fprintf(g.Out, "keep   %s\n", m.ID)
			}
			for _, m := range res.Remove {
				fmt.Fprintf(g.Out, "remove %s\n", m.ID)
			}
			for _, c := range res.Chains {
				fmt.Fprintf(g.Out, "remove journal chain %s\n", c)
			}
			printDamaged(g.ErrOut, res.Damaged)
			for _, m := range res.Future {
				fmt.Fprintf(g.ErrOut, "warning: snapshot %s is dated %s, in the future: it is kept and counts for no --keep-* rule (a runner's clock was wrong; forget --id %s removes it)\n",
					m.ID, m.Time.UTC().Format(time.RFC3339), m.ID)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(g.Out, "kept %d snapshots, %s %d\n", len(res.Keep), verb, len(res.Remove))
			if len(res.Chains) > 0 {
				fmt.Fprintf(g.Out, "%s %d journal chains\n", verb, len(res.Chains))
			}
			return nil
		},
	}
	f := cmd.Flags()
	for i, r := range rules {
		f.Int32Var(&keep[i], r.Flag, 0, r.Help)
	}
	f.BoolVar(&dryRun, "dry-run", false, "only print what would be removed")
	f.StringSliceVar(&ids, "id", nil, "remove these snapshots (and their journal chains) whatever their manifests hold, e.g. a damaged one that snapshots names")
	f.DurationVar(&within, "keep-within-window", 0, "keep every base and journal segment that a restore to an instant of this last stretch of time needs, and remove the older chains with their bases")
	return cmd
}

func newCheckCommand(g *global) *cobra.Command {
	var opts repo.CheckOptions
	cmd := &cobra.Command{
		Use:   "check --repository URL [--read-data] [--prune-orphans]",
		Short: "Verify manifests and data objects; report and optionally remove orphans of failed backups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := withRepository(cmd.Context(), g, existing, func(r *repo.Repository) (repo.CheckResult, error) {
				return r.Check(cmd.Context(), opts)
			})
			if err != nil {
				return err
			}
			for _, o := range res.Orphans {
				state := "orphan (incomplete snapshot, invisible; --prune-orphans removes it)"
				if slices.Contains(res.Pruned, o) {
					state = "orphan removed"
				} else if opts.PruneOrphans {
					state = fmt.Sprintf("orphan kept (younger than %s: a backup may still be writing it)", opts.OrphanMinAge)
				}
				fmt.Fprintf(g.Out, "%s: %s\n", o, state)
			}
			for _, p := range res.Problems {
				fmt.Fprintf(g.Out, "error: %s\n", p)
			}
			if len(res.Problems) > 0 {
				return fmt.Errorf("check found %d problems in %d snapshots", len(res.Problems), res.Snapshots)
			}
			what := "manifests and object sizes"
			if opts.ReadData {
				what = "manifests and all data"
			}
			fmt.Fprintf(g.Out, "no errors: %d snapshots (%s verified), %d orphans\n", res.Snapshots, what, len(res.Orphans)-len(res.Pruned))
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.ReadData, "read-data", false, "download, decrypt and hash every snapshot")
	f.BoolVar(&opts.PruneOrphans, "prune-orphans", false, "remove incomplete snapshots left by failed backups")
	f.DurationVar(&opts.OrphanMinAge, "orphan-min-age", time.Hour, "only prune orphans older than this (younger ones may be running backups)")
	return cmd
}

func newCatCommand(g *global) *cobra.Command {
	var snapshot string
	cmd := &cobra.Command{
		Use:   "cat [SNAPSHOT] --repository URL",
		Short: "Write a snapshot as a plain RESP stream to stdout, e.g. for `redis-cli --pipe`",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if snapshot != "" && snapshot != args[0] {
					return errors.New("give the snapshot either as an argument or with --snapshot, not both")
				}
				snapshot = args[0]
			}
			return g.useRepository(cmd.Context(), existing, func(r *repo.Repository) error {
				return runCat(cmd.Context(), g.Out, r, snapshot)
			})
		},
	}
	cmd.Flags().StringVar(&snapshot, "snapshot", "", "snapshot id, unique id prefix, or latest (default latest)")
	return cmd
}

// runCat streams the plaintext as it is (the format of runner/stream, which redis-cli --pipe
// replays), without decoding it; the stream is verified while it is written and the command fails
// (after the data was written) if verification fails, so a pipeline must check the exit status.
func runCat(ctx context.Context, out io.Writer, r *repo.Repository, snapshot string) error {
	m, err := r.Resolve(ctx, snapshot)
	if err != nil {
		return err
	}
	sr, err := r.OpenSnapshot(ctx, m)
	if err != nil {
		return err
	}
	defer sr.Close()
	if _, err := io.Copy(out, sr); err != nil {
		return fmt.Errorf("cat snapshot %s: %w", m.ID, err)
	}
	return nil
}

func newVersionCommand(g *global) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the runner version and snapshot format",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := g.version
			if v == "" {
				v = version.Version
			}
			fmt.Fprintf(g.Out, "stash-runner %s (snapshot format %d)\n", v, repo.FormatVersion)
			return nil
		},
	}
}
