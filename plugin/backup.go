package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"stash.dev/redis/api/v1alpha1"
)

// NewCmdBackup returns `kubectl stash backup`.
func NewCmdBackup(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "backup",
		Aliases: []string{"backups"},
		Short:   "Trigger, follow, pause, resume and inspect backups",
	}
	cmd.AddCommand(NewCmdBackupTrigger(getter, streams))
	cmd.AddCommand(NewCmdBackupPause(getter, streams, true))
	cmd.AddCommand(NewCmdBackupPause(getter, streams, false))
	cmd.AddCommand(NewCmdBackupList(getter, streams))
	cmd.AddCommand(NewCmdBackupDescribe(getter, streams))
	cmd.AddCommand(NewCmdBackupLogs(getter, streams))
	return cmd
}

func backupListHint(ns string) string { return "kubectl stash backup list -n " + ns }

// BackupTriggerOptions starts a backup now, as the schedule would.
type BackupTriggerOptions struct {
	genericiooptions.IOStreams
	clusterCommand
	wait     bool
	timeout  time.Duration
	interval time.Duration
}

// NewCmdBackupTrigger returns `kubectl stash backup trigger`.
func NewCmdBackupTrigger(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &BackupTriggerOptions{IOStreams: streams, clusterCommand: clusterCommand{getter: getter}, interval: time.Second}
	cmd := &cobra.Command{
		Use:   "trigger BACKUPCONFIG [--wait] [--timeout DURATION]",
		Short: "Back up now: create a BackupSession as the schedule would, and optionally follow it",
		Long: `Trigger creates a BackupSession for the BackupConfiguration, as its CronJob does.
With --wait it follows the session, printing phase, keys, bytes and rate, and exits non-zero
with the failure reason when the backup fails.`,
		Example:           `  kubectl stash backup trigger nightly -n db --wait`,
		Args:              cobra.ExactArgs(1),
		RunE:              runE(o),
		ValidArgsFunction: completeNames(getter, v1alpha1.KindBackupConfiguration),
	}
	cmd.Flags().BoolVarP(&o.wait, "wait", "w", false, "follow the session until it ends; exit non-zero when it fails")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 0, "with --wait, give up after this long (0: until the session ends)")
	cmd.Flags().DurationVar(&o.interval, "poll-interval", time.Second, "with --wait, how often to read the session")
	_ = cmd.Flags().MarkHidden("poll-interval")
	return cmd
}

// Validate checks the flags.
func (o *BackupTriggerOptions) Validate() error {
	if o.timeout < 0 || o.interval <= 0 {
		return errors.New("--timeout and --poll-interval must be positive")
	}
	return nil
}

// Run creates the session and, with --wait, follows it.
func (o *BackupTriggerOptions) Run(ctx context.Context) error {
	k := o.kube
	var bc v1alpha1.BackupConfiguration
	if err := k.get(ctx, v1alpha1.KindBackupConfiguration, o.name, &bc); err != nil {
		return k.explain(err, v1alpha1.KindBackupConfiguration, o.name, backupListHint(k.namespace))
	}
	s := v1alpha1.NewBackupSession(&bc)
	var created v1alpha1.BackupSession
	if err := k.create(ctx, v1alpha1.KindBackupSession, s, &created); err != nil {
		return k.explain(err, v1alpha1.KindBackupSession, "", backupListHint(k.namespace))
	}
	fmt.Fprintf(o.Out, "backupsession.stash.dev/%s created\n", created.Name)
	if bc.Spec.Paused {
		fmt.Fprintf(o.ErrOut, "Warning: backupconfiguration %q is paused: its schedule is stopped, but this triggered session runs (see: kubectl stash backup resume %s -n %s)\n", bc.Name, bc.Name, k.namespace)
	}
	if !o.wait {
		return nil
	}
	return follow(ctx, o.Out, followOptions{
		kind: v1alpha1.KindBackupSession, name: created.Name, ns: k.namespace, interval: o.interval, timeout: o.timeout,
		describe: fmt.Sprintf("kubectl stash backup describe %s -n %s", bc.Name, k.namespace),
		get: func(ctx context.Context) (sessionState, error) {
			var s v1alpha1.BackupSession
			if err := k.get(ctx, v1alpha1.KindBackupSession, created.Name, &s); err != nil {
				return sessionState{}, k.explain(err, v1alpha1.KindBackupSession, created.Name, backupListHint(k.namespace))
			}
			return backupState(&s), nil
		},
	})
}

// BackupPauseOptions pauses or resumes the schedule of a BackupConfiguration.
type BackupPauseOptions struct {
	genericiooptions.IOStreams
	clusterCommand
	pause bool
}

// NewCmdBackupPause returns `kubectl stash backup pause` (pause) or `resume` (!pause).
func NewCmdBackupPause(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams, pause bool) *cobra.Command {
	o := &BackupPauseOptions{IOStreams: streams, clusterCommand: clusterCommand{getter: getter}, pause: pause}
	cmd := &cobra.Command{
		Use:               "pause BACKUPCONFIG",
		Short:             "Stop scheduled backups (spec.paused=true); triggered ones still run",
		Args:              cobra.ExactArgs(1),
		RunE:              runE(o),
		ValidArgsFunction: completeNames(getter, v1alpha1.KindBackupConfiguration),
	}
	if !pause {
		cmd.Use, cmd.Short = "resume BACKUPCONFIG", "Resume scheduled backups (spec.paused=false)"
	}
	return cmd
}

// Validate has nothing to check.
func (o *BackupPauseOptions) Validate() error { return nil }

// Run patches spec.paused.
func (o *BackupPauseOptions) Run(ctx context.Context) error {
	k := o.kube
	patch := map[string]any{"spec": map[string]any{"paused": o.pause}}
	if err := k.mergePatch(ctx, v1alpha1.KindBackupConfiguration, o.name, patch); err != nil {
		return k.explain(err, v1alpha1.KindBackupConfiguration, o.name, backupListHint(k.namespace))
	}
	verb := "paused"
	if !o.pause {
		verb = "resumed"
	}
	fmt.Fprintf(o.Out, "backupconfiguration.stash.dev/%s %s\n", o.name, verb)
	return nil
}

// BackupListOptions lists BackupConfigurations and their sessions.
type BackupListOptions struct {
	genericiooptions.IOStreams
	clusterCommand
	printFlags *genericclioptions.PrintFlags
}

// NewCmdBackupList returns `kubectl stash backup list`.
func NewCmdBackupList(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &BackupListOptions{IOStreams: streams, clusterCommand: clusterCommand{getter: getter}, printFlags: genericclioptions.NewPrintFlags("")}
	cmd := &cobra.Command{
		Use:     "list [BACKUPCONFIG]",
		Aliases: []string{"ls"},
		Short:   "List BackupConfigurations and BackupSessions (phase, duration, snapshot)",
		Example: `  kubectl stash backup list -n db
  kubectl stash backup list nightly -n db -o yaml`,
		Args:              cobra.MaximumNArgs(1),
		RunE:              runE(o),
		ValidArgsFunction: completeNames(getter, v1alpha1.KindBackupConfiguration),
	}
	o.printFlags.AddFlags(cmd)
	return cmd
}

// Validate has nothing to check.
func (o *BackupListOptions) Validate() error { return nil }

// Run prints the tables, or with -o the sessions.
func (o *BackupListOptions) Run(ctx context.Context) error {
	k := o.kube
	var bcs []v1alpha1.BackupConfiguration
	if o.name != "" {
		var bc v1alpha1.BackupConfiguration
		if err := k.get(ctx, v1alpha1.KindBackupConfiguration, o.name, &bc); err != nil {
			return k.explain(err, v1alpha1.KindBackupConfiguration, o.name, backupListHint(k.namespace))
		}
		bcs = append(bcs, bc)
	} else {
		var list v1alpha1.BackupConfigurationList
		if err := k.list(ctx, v1alpha1.KindBackupConfiguration, "", &list); err != nil {
			return k.explain(err, v1alpha1.KindBackupConfiguration, "", "")
		}
		bcs = list.Items
	}
	sessions, err := o.sessions(ctx)
	if err != nil {
		return err
	}
	if *o.printFlags.OutputFormat != "" {
		p, err := o.printFlags.ToPrinter()
		if err != nil {
			return err
		}
		list := &v1alpha1.BackupSessionList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "List"}, Items: sessions}
		if *o.printFlags.OutputFormat == "name" {
			for i := range sessions {
				sessions[i].APIVersion, sessions[i].Kind = v1alpha1.GroupVersion.String(), v1alpha1.KindBackupSession
				if err := p.PrintObj(&sessions[i], o.Out); err != nil {
					return err
				}
			}
			return nil
		}
		for i := range list.Items {
			list.Items[i].APIVersion, list.Items[i].Kind = v1alpha1.GroupVersion.String(), v1alpha1.KindBackupSession
		}
		return p.PrintObj(list, o.Out)
	}
	if len(bcs) == 0 {
		fmt.Fprintf(o.ErrOut, "No BackupConfigurations in namespace %q (see: kubectl stash create backupconfig --help)\n", k.namespace)
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(o.Out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKUPCONFIG\tSCHEDULE\tPAUSED\tPHASE\tLAST SUCCESS")
	for _, bc := range bcs {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\n", bc.Name, bc.Spec.Schedule, bc.Spec.Paused, dash(string(bc.Status.Phase)), ago(bc.Status.LastSuccessfulBackupTime, now))
	}
	fmt.Fprintln(tw)
	writeSessions(tw, sessions, now)
	return tw.Flush()
}

func (o *BackupListOptions) sessions(ctx context.Context) ([]v1alpha1.BackupSession, error) {
	k := o.kube
	var list v1alpha1.BackupSessionList
	if err := k.list(ctx, v1alpha1.KindBackupSession, "", &list); err != nil {
		return nil, k.explain(err, v1alpha1.KindBackupSession, "", "")
	}
	var out []v1alpha1.BackupSession
	for _, s := range list.Items {
		if o.name == "" || s.Spec.Invoker.Name == o.name {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[j].CreationTimestamp.Before(&out[i].CreationTimestamp) })
	return out, nil
}

func writeSessions(w io.Writer, sessions []v1alpha1.BackupSession, now time.Time) {
	if len(sessions) == 0 {
		fmt.Fprintln(w, "No BackupSessions yet (see: kubectl stash backup trigger BACKUPCONFIG --wait)")
		return
	}
	fmt.Fprintln(w, "SESSION\tBACKUPCONFIG\tPHASE\tDURATION\tSNAPSHOT\tKEYS\tSIZE\tAGE")
	for _, s := range sessions {
		size := "-"
		if s.Status.Bytes > 0 {
			size = v1alpha1.HumanBytes(s.Status.Bytes)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.Spec.Invoker.Name, orPending(s.Status.Phase),
			sessionDuration(s.Status.SessionDuration, s.Status.StartTime, s.Status.CompletionTime), dash(s.Status.Snapshot),
			s.Status.Keys, size, ago(&s.CreationTimestamp, now))
	}
}

func sessionDuration(d string, start, end *metav1.Time) string {
	switch {
	case d != "":
		return d
	case start != nil && end != nil:
		return duration.HumanDuration(end.Sub(start.Time))
	}
	return "-"
}

func ago(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t.Time))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// BackupDescribeOptions shows a BackupConfiguration, its conditions and its sessions.
type BackupDescribeOptions struct {
	genericiooptions.IOStreams
	clusterCommand
}

// NewCmdBackupDescribe returns `kubectl stash backup describe`.
func NewCmdBackupDescribe(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &BackupDescribeOptions{IOStreams: streams, clusterCommand: clusterCommand{getter: getter}}
	return &cobra.Command{
		Use:               "describe BACKUPCONFIG",
		Short:             "Show a BackupConfiguration: schedule, target, retention, conditions and sessions",
		Args:              cobra.ExactArgs(1),
		RunE:              runE(o),
		ValidArgsFunction: completeNames(getter, v1alpha1.KindBackupConfiguration),
	}
}

// Validate has nothing to check.
func (o *BackupDescribeOptions) Validate() error { return nil }

// Run prints the description.
func (o *BackupDescribeOptions) Run(ctx context.Context) error {
	k := o.kube
	var bc v1alpha1.BackupConfiguration
	if err := k.get(ctx, v1alpha1.KindBackupConfiguration, o.name, &bc); err != nil {
		return k.explain(err, v1alpha1.KindBackupConfiguration, o.name, backupListHint(k.namespace))
	}
	lo := &BackupListOptions{clusterCommand: clusterCommand{kube: k, name: o.name}}
	sessions, err := lo.sessions(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	tw := tabwriter.NewWriter(o.Out, 0, 8, 2, ' ', 0)
	s := bc.Spec
	repo := s.Repository.Name
	if s.Repository.Namespace != "" {
		repo = s.Repository.Namespace + "/" + repo
	}
	fmt.Fprintf(tw, "Name:\t%s\nNamespace:\t%s\nSchedule:\t%s\n", bc.Name, bc.Namespace, s.Schedule)
	if s.TimeZone != "" {
		fmt.Fprintf(tw, "Time zone:\t%s\n", s.TimeZone)
	}
	fmt.Fprintf(tw, "Next run:\t%s\nPaused:\t%t\nRepository:\t%s\nTarget:\t%s\n", nextRun(&bc, now), s.Paused, repo, describeTarget(s.Target))
	if h := s.Hooks; h != nil {
		for _, line := range describeHooks(h.PreBackup, "preBackup", h.PostBackup, "postBackup") {
			fmt.Fprintf(tw, "Hook:\t%s\n", line)
		}
	}
	if rp := s.RetentionPolicy; rp != nil {
		fmt.Fprintf(tw, "Retention:\t%s\n", describeRetention(rp))
	}
	fmt.Fprintf(tw, "Timeout:\t%s\n", dash(s.TimeOut))
	fmt.Fprintf(tw, "Phase:\t%s\n", dash(string(bc.Status.Phase)))
	if bc.Status.Message != "" {
		fmt.Fprintf(tw, "Message:\t%s\n", bc.Status.Message)
	}
	fmt.Fprintf(tw, "Last backup:\t%s ago\nLast success:\t%s ago\n", ago(bc.Status.LastBackupTime, now), ago(bc.Status.LastSuccessfulBackupTime, now))
	if c := s.Continuous; c != nil && c.Enabled {
		fmt.Fprintf(tw, "Continuous:\t%s\n", describeContinuous(bc.Status.Continuous, now))
	}
	if len(bc.Status.Conditions) > 0 {
		fmt.Fprintln(tw, "Conditions:")
		fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tMESSAGE")
		for _, c := range bc.Status.Conditions {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	fmt.Fprintln(tw, "Sessions:")
	writeSessions(tw, sessions, now)
	// Why sessions failed is the first thing a user looks for.
	for _, s := range sessions {
		if s.Status.Error != "" {
			fmt.Fprintf(tw, "Error of %s:\t%s\n", s.Name, s.Status.Error)
		}
	}
	return tw.Flush()
}

// describeContinuous says what a point-in-time restore can reach and how far behind the
// follower is.
func describeContinuous(cs *v1alpha1.ContinuousStatus, now time.Time) string {
	if cs == nil || cs.WindowEnd == nil {
		return "enabled, no window yet (the follower has not reported)"
	}
	out := fmt.Sprintf("chain %s, restorable from %s to %s (%s behind)", cs.Chain,
		cs.WindowStart.UTC().Format(time.RFC3339), cs.WindowEnd.UTC().Format(time.RFC3339), now.Sub(cs.WindowEnd.Time).Round(time.Second))
	if cs.Error != "" {
		out += "; follower error: " + cs.Error
	}
	return out
}

func describeTarget(t v1alpha1.Target) string {
	switch {
	case t.Ref != nil:
		return "AppBinding " + t.Ref.Name
	case t.Redis != nil && t.Redis.Service != nil:
		return fmt.Sprintf("Service %s:%d (%s)", t.Redis.Service.Name, t.Redis.Service.Port, t.Redis.Mode)
	case t.Redis != nil:
		return fmt.Sprintf("%s (%s)", t.Redis.Address, t.Redis.Mode)
	}
	return "-"
}

func describeRetention(rp *v1alpha1.RetentionPolicy) string {
	var parts []string
	for _, r := range rp.Rules() {
		if v := r.Value(); v != nil {
			parts = append(parts, fmt.Sprintf("%s=%d", r.Flag, *v))
		}
	}
	if rp.Prune {
		parts = append(parts, "prune")
	}
	if rp.DryRun {
		parts = append(parts, "dry-run")
	}
	return strings.Join(parts, " ")
}

// BackupLogsOptions prints the logs of the Job pod of a session.
type BackupLogsOptions struct {
	genericiooptions.IOStreams
	clusterCommand
	follow bool
}

// NewCmdBackupLogs returns `kubectl stash backup logs`.
func NewCmdBackupLogs(getter genericclioptions.RESTClientGetter, streams genericiooptions.IOStreams) *cobra.Command {
	o := &BackupLogsOptions{IOStreams: streams, clusterCommand: clusterCommand{getter: getter}}
	cmd := &cobra.Command{
		Use:               "logs SESSION",
		Short:             "Print the logs of the Job pod of a BackupSession",
		Args:              cobra.ExactArgs(1),
		RunE:              runE(o),
		ValidArgsFunction: completeNames(getter, v1alpha1.KindBackupSession),
	}
	cmd.Flags().BoolVarP(&o.follow, "follow", "f", false, "stream the logs")
	return cmd
}

// Validate has nothing to check.
func (o *BackupLogsOptions) Validate() error { return nil }

// Run finds the newest pod of the session's Job and copies its logs.
func (o *BackupLogsOptions) Run(ctx context.Context) error {
	k := o.kube
	kind, job, hint := v1alpha1.KindBackupSession, v1alpha1.BackupJobName(o.name), backupListHint(k.namespace)
	var s v1alpha1.BackupSession
	if err := k.get(ctx, kind, o.name, &s); err != nil {
		return k.explain(err, kind, o.name, hint)
	}
	st := backupState(&s)
	if st.job != "" {
		job = st.job
	}
	var pods *corev1.PodList
	for _, selector := range []string{"job-name=" + job, v1alpha1.LabelSession + "=" + o.name} {
		var err error
		if pods, err = k.core.CoreV1().Pods(k.namespace).List(ctx, metav1.ListOptions{LabelSelector: selector}); err != nil {
			return k.explain(err, "Pod", "", "")
		}
		if len(pods.Items) > 0 {
			break
		}
	}
	if len(pods.Items) == 0 {
		return fmt.Errorf("%s %q (phase %s) has no pod of job %q yet (see: kubectl describe job %s -n %s)", strings.ToLower(kind), o.name, orPending(st.phase), job, job, k.namespace)
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return pods.Items[j].CreationTimestamp.Before(&pods.Items[i].CreationTimestamp)
	})
	pod := pods.Items[0]
	rc, err := k.core.CoreV1().Pods(k.namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Follow: o.follow}).Stream(ctx)
	if err != nil {
		return k.explain(err, "Pod", pod.Name, "kubectl describe pod "+pod.Name+" -n "+k.namespace)
	}
	defer rc.Close()
	_, err = io.Copy(o.Out, rc)
	return err
}
